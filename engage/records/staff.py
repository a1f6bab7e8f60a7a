"""Staff accounts: add, list, deactivate, reset a password, and sign in (with failed-login throttling).

Passwords are hashed with argon2id (argon2-cffi's ``PasswordHasher`` defaults), must
be at least :data:`MIN_PASSWORD_LENGTH` characters, and must not be guessable: zxcvbn
(offline, its dictionaries ship with the package) scores them, and a score below
:data:`MIN_PASSWORD_SCORE` (fewer than 10^8 guesses: common passwords, repeats like
``aaaaaaaaaaaa``, ``password1234``, the user's own email or name) is refused. A password
reset or a deactivation ends the account's sessions and revokes its API tokens, so a
later reactivation does not bring an old token back. :func:`authenticate` answers the same
way, after the same work, for an unknown address, a wrong password and a deactivated
account, so the sign-in page never tells anyone which addresses exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from zxcvbn import zxcvbn

from engage.clock import utcnow
from engage.config import get_settings
from engage.errors import InvalidInput, NotFound
from engage.records import login_throttle, validation
from engage.records.audit import AuditAction, audit
from engage.records.lookup import get
from engage.records.models import ApiToken, Clinic, Role, StaffSession, StaffUser

MIN_PASSWORD_LENGTH = 12
#: zxcvbn's score 3: "safely unguessable", at least 10^8 guesses (0-2 are common or patterned passwords).
MIN_PASSWORD_SCORE = 3
_hasher = PasswordHasher()
#: Verified against when the address is unknown, so that answer takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password-for-timing")


class LoginRefused(Exception):
    """Sign-in refused. The message is the same whatever the cause (no account enumeration)."""


class LoginThrottled(LoginRefused):
    """Too many failed sign-ins for this account or address lately; try again after the window."""


def role(value: str) -> Role:
    """A role from its name (``admin``, ``front_desk``/``front-desk``, ``practitioner``)."""
    try:
        return Role(value.strip().lower().replace("-", "_"))
    except ValueError:
        raise InvalidInput(f"unknown role {value!r}: choose admin, front_desk or practitioner") from None


def check_password(password: str, user_inputs: tuple[str, ...] = ()) -> str:
    """The password, if it is long enough and not guessable; raises ``InvalidInput``.

    ``user_inputs``: the account's email and name, which zxcvbn treats as known words.
    Works offline (zxcvbn's word lists are in the package); only the first 100 characters
    are scored, as zxcvbn's time grows with the length.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password must be at least {MIN_PASSWORD_LENGTH} characters long")
    if (
        not password.strip()
        or zxcvbn(password[:100], user_inputs=[u for u in user_inputs if u])["score"] < MIN_PASSWORD_SCORE
    ):
        raise InvalidInput(
            "the password is too easy to guess (a common password, a pattern or repeats, or your own name or email); "
            "try a few unrelated words"
        )
    return password


def _end_access(session: Session, staff: StaffUser) -> None:
    """End the account's browser sessions and revoke its API tokens (revoked stays revoked)."""
    session.execute(delete(StaffSession).where(StaffSession.staff_user_id == staff.id))
    session.execute(
        update(ApiToken)
        .where(ApiToken.staff_user_id == staff.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def create_staff(
    session: Session,
    *,
    clinic_id: int,
    email: str,
    name: str,
    role_name: str | Role,
    password: str,
    actor: str,
) -> StaffUser:
    """A new, active staff account. Raises ``InvalidInput`` (bad email, taken email, short password, bad role)."""
    clinic: Clinic = get(session, Clinic, clinic_id)
    address = validation.email_address(email)
    chosen = role_name if isinstance(role_name, Role) else role(role_name)
    check_password(password, (address, name))
    # Unique per clinic: another clinic's account with this address is none of this clinic's business.
    if session.scalar(select(StaffUser.id).where(StaffUser.clinic_id == clinic.id, StaffUser.email == address)):
        raise InvalidInput("this clinic already has a staff account with that email address")
    staff = StaffUser(
        clinic_id=clinic.id,
        email=address,
        name=name.strip(),
        role=chosen,
        password_hash=_hasher.hash(password),
        active=True,
    )
    session.add(staff)
    session.flush()
    audit(
        session,
        clinic_id=clinic.id,
        actor=actor,
        action=AuditAction.STAFF_CREATE,
        subject_type="staff_user",
        subject_id=staff.id,
        role=chosen.value,
    )
    return staff


def list_staff(session: Session, clinic_id: int | None = None) -> list[StaffUser]:
    """Staff accounts (of one clinic, or all), by clinic then email."""
    query = select(StaffUser).order_by(StaffUser.clinic_id, StaffUser.email)
    if clinic_id is not None:
        query = query.where(StaffUser.clinic_id == clinic_id)
    return list(session.scalars(query))


def get_staff_in_clinic(session: Session, clinic_id: int | None, staff_id: int) -> StaffUser:
    """The account, or ``NotFound`` when it does not exist or (``clinic_id`` given) belongs to another clinic."""
    staff = session.get(StaffUser, staff_id)
    if staff is None or (clinic_id is not None and staff.clinic_id != clinic_id):
        raise NotFound(f"no staff account with id {staff_id}")
    return staff


def deactivate_staff(session: Session, staff_id: int, *, clinic_id: int | None = None, actor: str) -> StaffUser:
    """Deactivate an account, end its sessions and revoke its API tokens; it can no longer sign in. Twice is a no-op.

    Raises ``InvalidInput`` when ``actor`` is the account itself (its email, as staff pages audit it):
    a clinic's last admin could otherwise lock everyone out.
    """
    staff = get_staff_in_clinic(session, clinic_id, staff_id)
    if actor.lower() in (staff.email.lower(), f"api:{staff.email.lower()}"):
        raise InvalidInput("you cannot deactivate your own account")
    if staff.active:
        staff.active = False
        _end_access(session, staff)
        audit(
            session,
            clinic_id=staff.clinic_id,
            actor=actor,
            action=AuditAction.STAFF_DEACTIVATE,
            subject_type="staff_user",
            subject_id=staff.id,
        )
        session.flush()
    return staff


def reset_password(
    session: Session,
    staff_id: int,
    password: str,
    *,
    clinic_id: int | None = None,
    actor: str,
) -> StaffUser:
    """Set a new password, end the account's sessions and revoke its API tokens (a reset means a suspected leak)."""
    staff = get_staff_in_clinic(session, clinic_id, staff_id)
    check_password(password, (staff.email, staff.name))
    staff.password_hash = _hasher.hash(password)
    _end_access(session, staff)
    audit(
        session,
        clinic_id=staff.clinic_id,
        actor=actor,
        action=AuditAction.STAFF_RESET_PASSWORD,
        subject_type="staff_user",
        subject_id=staff.id,
    )
    session.flush()
    return staff


@dataclass(frozen=True)
class _Keys:
    account: str
    address: str | None


def _keys(email: str, ip: str | None) -> _Keys:
    # Cut to the column's width: whatever someone types in the box must not turn into an error.
    return _Keys(f"email:{email.strip().lower()}"[:400], f"ip:{ip}"[:400] if ip else None)


def account_key(email: str) -> str:
    """The throttle key of an account: password and second-factor failures count together."""
    return _keys(email, None).account


def authenticate(session: Session, email: str, password: str, ip: str | None = None) -> StaffUser:
    """The active account with this email and password, or ``LoginRefused``.

    Each attempt is first counted for the address and for ``ip`` (:mod:`engage.records.login_throttle`,
    atomic and committed at once); once ``settings.login_max_failures`` attempts for either are failed
    or in flight within ``settings.login_window_minutes``, raises ``LoginThrottled`` without checking the
    password. A success gives its count back in the caller's session: commit it.
    """
    settings = get_settings()
    keys = _keys(email, ip)
    wanted = [k for k in (keys.account, keys.address) if k]
    if not login_throttle.reserve(session, wanted):
        raise LoginThrottled(f"too many failed sign-ins; wait {settings.login_window_minutes:g} minutes and try again")
    # One address may have accounts at several clinics: the first (oldest) whose password matches signs in.
    found: list[StaffUser | None] = list(
        session.scalars(select(StaffUser).where(StaffUser.email == email.strip().lower()).order_by(StaffUser.id))
    )
    for staff in found or [None]:
        if _verify(staff.password_hash if staff else _DUMMY_HASH, password) and staff is not None and staff.active:
            if _hasher.check_needs_rehash(staff.password_hash):
                staff.password_hash = _hasher.hash(password)
            login_throttle.release(session, wanted)
            return staff
    raise LoginRefused("wrong email address or password")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def staff_json(staff: StaffUser) -> dict[str, Any]:
    return {
        "id": staff.id,
        "clinic_id": staff.clinic_id,
        "email": staff.email,
        "name": staff.name,
        "role": staff.role.value,
        "active": staff.active,
        "created_at": staff.created_at.isoformat(),
    }
