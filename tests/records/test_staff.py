"""Staff accounts and sessions: argon2id passwords, sign-in without enumeration, throttling, timeouts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engage import clock
from engage.errors import InvalidInput
from engage.records import staff as accounts
from engage.records.models import AuditEvent, Role, StaffSession
from engage.records.staff_sessions import csrf_matches, end_session, resume_session, start_session
from tests import seed


def test_password_is_stored_as_argon2id_and_checked(session: Session) -> None:
    clinic = seed.clinic(session)
    created = seed.staff(session, clinic.id, "desk@clinic.example")
    assert created.password_hash.startswith("$argon2id$")
    assert seed.PASSWORD not in created.password_hash
    assert accounts.authenticate(session, "Desk@Clinic.example", seed.PASSWORD).id == created.id


def test_outside_the_tests_passwords_are_hashed_at_argon2id_s_default_cost() -> None:
    from argon2 import PasswordHasher, Type

    from tests.conftest import PRODUCTION_HASHER

    default = PasswordHasher()
    # The tests hash at the lightest cost (tests/conftest.py): the hasher engage ships is argon2-cffi's default.
    assert PRODUCTION_HASHER.type is Type.ID
    assert (PRODUCTION_HASHER.time_cost, PRODUCTION_HASHER.memory_cost, PRODUCTION_HASHER.parallelism) == (
        default.time_cost,
        default.memory_cost,
        default.parallelism,
    )
    assert PRODUCTION_HASHER.hash(seed.PASSWORD).startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    # A light hash made in the tests is upgraded to that cost at the next sign-in.
    assert PRODUCTION_HASHER.check_needs_rehash(accounts._hasher.hash(seed.PASSWORD))


def test_short_password_and_unknown_role_are_refused_and_nothing_is_saved(session: Session) -> None:
    clinic = seed.clinic(session)
    with pytest.raises(InvalidInput, match="at least 12 characters"):
        accounts.create_staff(
            session,
            clinic_id=clinic.id,
            email="a@clinic.example",
            name="A",
            role_name="admin",
            password="short-pass1",
            actor="test",
        )
    with pytest.raises(InvalidInput, match="unknown role"):
        accounts.create_staff(
            session,
            clinic_id=clinic.id,
            email="a@clinic.example",
            name="A",
            role_name="boss",
            password=seed.PASSWORD,
            actor="test",
        )
    assert accounts.list_staff(session, clinic.id) == []


def test_wrong_password_unknown_email_and_deactivated_account_get_the_same_answer(session: Session) -> None:
    clinic = seed.clinic(session)
    gone = seed.staff(session, clinic.id, "gone@clinic.example")
    seed.staff(session, clinic.id, "desk@clinic.example")
    accounts.deactivate_staff(session, gone.id, actor="test")
    answers = set()
    for email, password in [
        ("desk@clinic.example", "wrong password!"),
        ("nobody@clinic.example", seed.PASSWORD),
        ("gone@clinic.example", seed.PASSWORD),
    ]:
        with pytest.raises(accounts.LoginRefused) as refused:
            accounts.authenticate(session, email, password, ip="10.0.0.1")
        answers.add(str(refused.value))
    assert answers == {"wrong email address or password"}


def test_five_failures_for_an_account_make_even_the_right_password_wait(session: Session) -> None:
    clinic = seed.clinic(session)
    seed.staff(session, clinic.id, "desk@clinic.example")
    start = clock.utcnow()
    with clock.frozen(start):
        for n in range(5):
            with pytest.raises(accounts.LoginRefused):
                accounts.authenticate(session, "desk@clinic.example", f"guess number {n}", ip=f"10.0.0.{n}")
        with pytest.raises(accounts.LoginThrottled):
            accounts.authenticate(session, "desk@clinic.example", seed.PASSWORD, ip="10.9.9.9")
    with clock.frozen(start + timedelta(minutes=16)):
        assert accounts.authenticate(session, "desk@clinic.example", seed.PASSWORD, ip="10.9.9.9")


def test_five_failures_from_one_address_throttle_every_account_tried_from_it(session: Session) -> None:
    clinic = seed.clinic(session)
    seed.staff(session, clinic.id, "desk@clinic.example")
    for n in range(5):
        with pytest.raises(accounts.LoginRefused):
            accounts.authenticate(session, f"user{n}@clinic.example", "some guess here", ip="203.0.113.5")
    with pytest.raises(accounts.LoginThrottled):
        accounts.authenticate(session, "desk@clinic.example", seed.PASSWORD, ip="203.0.113.5")
    assert accounts.authenticate(session, "desk@clinic.example", seed.PASSWORD, ip="198.51.100.7")


def test_session_cookie_token_is_not_stored_and_resumes_until_signed_out(session: Session) -> None:
    clinic = seed.clinic(session)
    desk = seed.staff(session, clinic.id, "desk@clinic.example")
    token = start_session(session, desk)
    assert session.scalar(select(func.count()).where(StaffSession.token_hash == token)) == 0
    signed_in = resume_session(session, token)
    assert signed_in is not None and signed_in.staff.id == desk.id
    assert csrf_matches(signed_in, signed_in.csrf_token) and not csrf_matches(signed_in, "forged")
    end_session(session, token)
    assert resume_session(session, token) is None


def test_session_ends_after_30_idle_minutes_and_after_12_hours_whatever_happens(session: Session) -> None:
    clinic = seed.clinic(session)
    desk = seed.staff(session, clinic.id, "desk@clinic.example")
    start = clock.utcnow()
    with clock.frozen(start):
        idle = start_session(session, desk)
        busy = start_session(session, desk)
    with clock.frozen(start + timedelta(minutes=31)):
        assert resume_session(session, idle) is None
    for minutes in range(25, 12 * 60, 25):  # a request every 25 minutes keeps it alive ...
        with clock.frozen(start + timedelta(minutes=minutes)):
            assert resume_session(session, busy) is not None, minutes
    with clock.frozen(start + timedelta(hours=12, minutes=1)):  # ... until the absolute limit
        assert resume_session(session, busy) is None


def test_reset_password_and_deactivation_end_open_sessions_and_are_audited(session: Session) -> None:
    clinic = seed.clinic(session)
    desk = seed.staff(session, clinic.id, "desk@clinic.example", role="practitioner")
    assert desk.role is Role.PRACTITIONER
    token = start_session(session, desk)
    accounts.reset_password(session, desk.id, "a brand new passphrase", actor="admin@clinic.example")
    assert resume_session(session, token) is None
    assert accounts.authenticate(session, desk.email, "a brand new passphrase")
    token = start_session(session, desk)
    accounts.deactivate_staff(session, desk.id, actor="test")
    assert resume_session(session, token) is None
    actions = set(session.scalars(select(AuditEvent.action).where(AuditEvent.subject_id == desk.id)))
    assert {"staff.create", "staff.reset_password", "staff.deactivate", "staff.login"} <= actions


def test_an_absurdly_long_address_is_refused_like_any_other(session: Session) -> None:
    seed.clinic(session)
    with pytest.raises(accounts.LoginRefused):
        accounts.authenticate(session, "x" * 1000 + "@clinic.example", "some password", ip="10.0.0.1")
    session.commit()


def test_no_one_deactivates_their_own_account_from_any_front_end(session: Session) -> None:
    clinic = seed.clinic(session)
    admin = seed.staff(session, clinic.id, "admin@clinic.example", "admin")
    for actor in ("Admin@Clinic.example", "api:admin@clinic.example"):  # the staff pages' and the API's actor
        with pytest.raises(InvalidInput, match="you cannot deactivate your own account"):
            accounts.deactivate_staff(session, admin.id, clinic_id=clinic.id, actor=actor)
    assert admin.active

    accounts.deactivate_staff(session, admin.id, clinic_id=clinic.id, actor="other-admin@clinic.example")
    assert not admin.active
    [event] = session.scalars(select(AuditEvent).where(AuditEvent.action == "staff.deactivate")).all()
    assert event.actor == "other-admin@clinic.example"
