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
            session,
            clinic_id=clinic.id,
            email="desk@clinic.example",
            name="Desk",
            role_name="admin",
            password=password,
            actor="test",
        )
    assert accounts.list_staff(session, clinic.id) == []


def test_a_reset_password_must_not_be_guessable_either(session: Session) -> None:
    clinic = seed.clinic(session)
    desk = seed.staff(session, clinic.id, "desk@clinic.example")
    with pytest.raises(InvalidInput, match="too easy to guess"):
        accounts.reset_password(session, desk.id, "password1234", actor="test")
    assert accounts.authenticate(session, desk.email, seed.PASSWORD)


def test_password_reset_revokes_the_staff_members_api_tokens(session: Session) -> None:
    clinic = seed.clinic(session)
    desk = seed.staff(session, clinic.id, "desk@clinic.example")
    _, token = api_tokens.create_token(session, staff_email=desk.email, actor="test")
    assert api_tokens.authenticate(session, token) is not None
    accounts.reset_password(session, desk.id, "a brand new passphrase", actor="test")
    assert api_tokens.authenticate(session, token) is None


def test_deactivation_revokes_tokens_and_a_reactivated_user_s_old_token_stays_dead(session: Session) -> None:
    clinic = seed.clinic(session)
    desk = seed.staff(session, clinic.id, "desk@clinic.example")
    _, token = api_tokens.create_token(session, staff_email=desk.email, actor="test")
    accounts.deactivate_staff(session, desk.id, actor="test")
    desk.active = True  # however an account comes back, its old tokens do not
    session.flush()
    assert api_tokens.authenticate(session, token) is None
    _, fresh = api_tokens.create_token(session, staff_email=desk.email, actor="test")
    assert api_tokens.authenticate(session, fresh) is not None


def test_an_address_another_clinic_uses_is_answered_as_if_it_did_not_exist(session: Session) -> None:
    ours = seed.clinic(session)
    theirs = seed.clinic(session, name="Elsewhere Physio", email="front@elsewhere.example")
    elsewhere = seed.staff(session, theirs.id, "sam@example.com")
    here = seed.staff(session, ours.id, "sam@example.com")  # one person, two clinics: a second account, no error
    assert here.id != elsewhere.id and here.clinic_id == ours.id
    with pytest.raises(InvalidInput, match="this clinic already has"):
        seed.staff(session, ours.id, "Sam@Example.com")
    accounts.reset_password(session, here.id, "a brand new passphrase", actor="test")
    # Each account signs in with its own password, and only to its own clinic.
    assert accounts.authenticate(session, "sam@example.com", "a brand new passphrase").id == here.id
    assert accounts.authenticate(session, "sam@example.com", seed.PASSWORD).id == elsewhere.id
    # A token is made for the account of the clinic asking; without a clinic the shared address is ambiguous.
    row, _ = api_tokens.create_token(session, staff_email="sam@example.com", clinic_id=ours.id, actor="test")
    assert row.staff_user_id == here.id
    with pytest.raises(InvalidInput, match="several clinics"):
        api_tokens.create_token(session, staff_email="sam@example.com", actor="test")
