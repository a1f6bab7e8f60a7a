"""Sign-in hardening (issue 21): guessable passwords refused, tokens revoked on reset and deactivation."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from engage.errors import InvalidInput
from engage.records import api_tokens
from engage.records import staff as accounts
from tests import seed


@pytest.mark.parametrize("password", [" " * 12, "a" * 12, "password1234", "qwertyuiop12", "desk@clinic.example"])
def test_common_and_guessable_passwords_are_refused_and_nothing_is_saved(session: Session, password: str) -> None:
    clinic = seed.clinic(session)
    with pytest.raises(InvalidInput, match="too easy to guess"):
        accounts.create_staff(
            session, clinic_id=clinic.id, email="desk@clinic.example", name="Desk", role_name="admin", password=password
        )
    assert accounts.list_staff(session, clinic.id) == []


def test_a_reset_password_must_not_be_guessable_either(session: Session) -> None:
    clinic = seed.clinic(session)
    desk = seed.staff(session, clinic.id, "desk@clinic.example")
    with pytest.raises(InvalidInput, match="too easy to guess"):
        accounts.reset_password(session, desk.id, "password1234")
    assert accounts.authenticate(session, desk.email, seed.PASSWORD)


def test_password_reset_revokes_the_staff_members_api_tokens(session: Session) -> None:
    clinic = seed.clinic(session)
    desk = seed.staff(session, clinic.id, "desk@clinic.example")
    _, token = api_tokens.create_token(session, staff_email=desk.email)
    assert api_tokens.authenticate(session, token) is not None
    accounts.reset_password(session, desk.id, "a brand new passphrase")
    assert api_tokens.authenticate(session, token) is None


def test_deactivation_revokes_tokens_and_a_reactivated_user_s_old_token_stays_dead(session: Session) -> None:
    clinic = seed.clinic(session)
    desk = seed.staff(session, clinic.id, "desk@clinic.example")
    _, token = api_tokens.create_token(session, staff_email=desk.email)
    accounts.deactivate_staff(session, desk.id)
    desk.active = True  # however an account comes back, its old tokens do not
    session.flush()
    assert api_tokens.authenticate(session, token) is None
    _, fresh = api_tokens.create_token(session, staff_email=desk.email)
    assert api_tokens.authenticate(session, fresh) is not None
