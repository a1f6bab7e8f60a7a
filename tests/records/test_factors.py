"""Staff second factors: RFC 6238 codes, one use per code, recovery codes, the lockout, the clinic's rule, resets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from engage import clock
from engage.errors import InvalidInput
from engage.records import factors
from engage.records import staff as accounts
from engage.records.clinics import create_clinic
from engage.records.models import AuditEvent, MfaPolicy, Role, StaffFactor, StaffUser
from tests import seed

#: RFC 6238 appendix B: the seeds are the ASCII strings "1234567890" repeated to the key length.
RFC_SECRETS = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
RFC_VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize(("at", "sha1", "sha256", "sha512"), RFC_VECTORS)
def test_codes_match_the_rfc_6238_test_vectors(at: int, sha1: str, sha256: str, sha512: str) -> None:
    import base64

    for digest, expected in (("sha1", sha1), ("sha256", sha256), ("sha512", sha512)):
        secret = base64.b32encode(RFC_SECRETS[digest]).decode()
        assert factors.totp_code(secret, at, digits=8, digest=digest) == expected


def _enrolled(session: Session, role: str = "admin") -> tuple[StaffUser, str, list[str]]:
    clinic = seed.clinic(session)
    staff = seed.staff(session, clinic.id, "admin@clinic.example", role)
    factor = factors.begin_totp(session, staff)
    assert factor.secret is not None
    codes = factors.confirm_totp(session, staff, factors.totp_code(factor.secret, clock.utcnow()), actor=staff.email)
    session.commit()
    return staff, factor.secret, codes


def test_enrolling_an_app_needs_its_current_code_and_gives_ten_hashed_recovery_codes(session: Session) -> None:
    clinic = seed.clinic(session)
    staff = seed.staff(session, clinic.id, "admin@clinic.example", "admin")
    factor = factors.begin_totp(session, staff)
    assert factor.secret is not None
    uri = factors.provisioning_uri(staff, factor)
    assert uri.startswith("otpauth://totp/") and factor.secret in uri
    assert "<svg" in factors.qr_svg(uri)
    with pytest.raises(InvalidInput, match="does not match"):
        factors.confirm_totp(session, staff, "000000", actor=staff.email)
    assert not factors.has_second_factor(session, staff.id)
    codes = factors.confirm_totp(session, staff, factors.totp_code(factor.secret, clock.utcnow()), actor=staff.email)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert factors.has_second_factor(session, staff.id)
    stored = " ".join(f.code_hash or "" for f in session.scalars(select(StaffFactor)))
    assert stored.count("$argon2id$") == 10 and not any(code in stored for code in codes)


def test_a_code_is_good_once_within_its_window(session: Session) -> None:
    now = clock.utcnow()
    with clock.frozen(now - timedelta(seconds=90)):
        staff, secret, _ = _enrolled(session)
    with clock.frozen(now):
        code = factors.totp_code(secret, now)
        assert factors.verify_code(session, staff, code) is factors.FactorKind.TOTP
        session.commit()
        with pytest.raises(factors.SecondFactorRefused):
            factors.verify_code(session, staff, code)
    with clock.frozen(now + timedelta(seconds=30)):
        assert factors.verify_code(session, staff, factors.totp_code(secret, now + timedelta(seconds=30)))


def test_each_recovery_code_works_once(session: Session) -> None:
    staff, _, codes = _enrolled(session)
    assert factors.verify_code(session, staff, codes[0].upper()) is factors.FactorKind.RECOVERY
    session.commit()
    with pytest.raises(factors.SecondFactorRefused):
        factors.verify_code(session, staff, codes[0])
    assert factors.summary(session, staff.id).recovery_left == 9


def test_five_failed_second_factors_lock_the_account_like_wrong_passwords(session: Session) -> None:
    now = clock.utcnow()
    with clock.frozen(now):
        staff, secret, _ = _enrolled(session)
    with clock.frozen(now + timedelta(minutes=1)):
        for _ in range(5):
            with pytest.raises(factors.SecondFactorRefused):
                factors.verify_code(
                    session, staff, "123456" if factors.totp_code(secret, now) != "123456" else "654321"
                )
        with pytest.raises(factors.SecondFactorThrottled):
            factors.verify_code(session, staff, factors.totp_code(secret, now + timedelta(minutes=1)))
        with pytest.raises(accounts.LoginThrottled):  # the password too
            accounts.authenticate(session, staff.email, seed.PASSWORD, ip="10.0.0.9")
    with clock.frozen(now + timedelta(minutes=17)):
        assert factors.verify_code(session, staff, factors.totp_code(secret, now + timedelta(minutes=17)))


def test_new_clinics_require_a_second_factor_of_admins_and_the_rule_can_cover_everyone(session: Session) -> None:
    clinic = create_clinic(
        session, name="New", timezone="America/Chicago", address="1 Main St", email="new@clinic.example", actor="test"
    )
    assert clinic.mfa_required is MfaPolicy.ADMINS
    admin = seed.staff(session, clinic.id, "admin@new.example", "admin")
    desk = seed.staff(session, clinic.id, "desk@new.example", "front_desk")
    assert factors.enrollment_needed(session, admin) and not factors.enrollment_needed(session, desk)
    factors.set_policy(session, clinic.id, "all", actor=admin.email)
    assert factors.enrollment_needed(session, desk)
    factors.set_policy(session, clinic.id, "none", actor=admin.email)
    assert not factors.enrollment_needed(session, admin)
    with pytest.raises(InvalidInput):
        factors.set_policy(session, clinic.id, "sometimes", actor=admin.email)
    assert factors.required_for(MfaPolicy.ADMINS, Role.ADMIN)


def test_an_admin_resets_a_colleague_but_their_own_only_with_a_second_factor(session: Session) -> None:
    admin, secret, codes = _enrolled(session)
    desk = seed.staff(session, admin.clinic_id, "desk@clinic.example")
    factors.begin_totp(session, desk)
    factors.reset_factors(session, desk.id, clinic_id=admin.clinic_id, actor=admin.email, actor_staff_id=admin.id)
    with pytest.raises(InvalidInput, match="your own"):
        factors.reset_factors(session, admin.id, clinic_id=admin.clinic_id, actor=admin.email, actor_staff_id=admin.id)
    with pytest.raises(factors.SecondFactorRefused):
        factors.reset_factors(
            session,
            admin.id,
            clinic_id=admin.clinic_id,
            actor=admin.email,
            actor_staff_id=admin.id,
            proof="aaaaa-bbbbb",
        )
    assert factors.has_second_factor(session, admin.id)
    factors.reset_factors(
        session, admin.id, clinic_id=admin.clinic_id, actor=admin.email, actor_staff_id=admin.id, proof=codes[3]
    )
    assert not factors.has_second_factor(session, admin.id)
    resets = session.scalars(select(AuditEvent.subject_id).where(AuditEvent.action == "staff.mfa_reset")).all()
    assert sorted(resets) == sorted([desk.id, admin.id])
