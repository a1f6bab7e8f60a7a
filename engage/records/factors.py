"""Staff second factors: authenticator apps (TOTP), recovery codes, the clinic's MFA rule, and resets.

- **TOTP** (RFC 6238 over pyotp): SHA-1, 6 digits, 30-second steps, a code accepted one step
  early or late (clock drift). Each accepted code moves the factor's ``last_step`` forward in
  one conditional UPDATE, so the same code (or an older one) is refused afterwards, even by a
  parallel request.
- **Recovery codes**: ten, shown once, stored as argon2 hashes; each works once (a conditional
  UPDATE marks it used). They are 50 random bits each, so a light argon2 cost is enough and
  checking ten stays fast.
- **Throttle**: a failed second factor counts against the account's sign-in throttle
  (:mod:`engage.records.login_throttle`, the same key as wrong passwords): five failures
  within the window lock the account for password and second factor alike.
- **Who must have one** (:func:`enrollment_needed`): the clinic's ``mfa_required`` — ``none``,
  ``admins`` (the default for new clinics) or ``all``. A staff member it covers who has no
  authenticator app and no passkey is sent to enrollment by the staff app. Recovery codes alone
  do not count: they are the way back in, not a factor.
- **Reset** (:func:`reset_factors`): removes every factor of an account (audited). A staff member
  resetting their own must prove a second factor first; an admin resets a colleague's.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from markupsafe import Markup
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.errors import InvalidInput
from engage.records import login_throttle
from engage.records import staff as accounts
from engage.records.audit import AuditAction, audit
from engage.records.models import Clinic, FactorKind, MfaPolicy, Role, StaffFactor, StaffUser

ISSUER = "engage"
DIGITS = 6
STEP_SECONDS = 30
RECOVERY_CODES = 10
#: Codes are random (50 bits), not chosen by people: argon2id at a low cost resists a table dump well enough.
_code_hasher = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


class SecondFactorRefused(Exception):
    """The code or passkey did not match (the message says what to do, never which part was wrong)."""


class SecondFactorThrottled(SecondFactorRefused):
    """Too many failed sign-ins or second factors for the account lately."""


# --- TOTP -------------------------------------------------------------------------------------------


def totp_code(secret: str, at: datetime | int, *, digits: int = DIGITS, digest: str = "sha1") -> str:
    """The RFC 6238 code for base32 ``secret`` at ``at`` (a datetime or Unix seconds)."""
    return str(pyotp.TOTP(secret, digits=digits, digest=digest, interval=STEP_SECONDS).at(at))


def _step(at: datetime) -> int:
    return int(at.timestamp()) // STEP_SECONDS


def begin_totp(session: Session, staff: StaffUser) -> StaffFactor:
    """A new, unconfirmed authenticator-app factor (its secret for the QR code); earlier unconfirmed ones go."""
    if _confirmed(session, staff.id, FactorKind.TOTP):
        raise InvalidInput("an authenticator app is already set up: remove it first to set up another")
    session.execute(
        delete(StaffFactor).where(
            StaffFactor.staff_user_id == staff.id,
            StaffFactor.kind == FactorKind.TOTP,
            StaffFactor.confirmed_at.is_(None),
        )
    )
    factor = StaffFactor(
        staff_user_id=staff.id, kind=FactorKind.TOTP, label="Authenticator app", secret=pyotp.random_base32()
    )
    session.add(factor)
    session.flush()
    return factor


def provisioning_uri(staff: StaffUser, factor: StaffFactor) -> str:
    """The ``otpauth://`` URI an authenticator app reads from the QR code."""
    assert factor.secret is not None
    return pyotp.TOTP(factor.secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=staff.email, issuer_name=f"{ISSUER} ({staff.clinic.name})"
    )


def qr_svg(uri: str) -> Markup:
    """``uri`` as a QR code: an inline ``<svg>`` (no image request, nothing for the CSP to allow)."""
    svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff", omitsize=False)
    return Markup(svg.replace("<svg ", '<svg role="img" aria-label="QR code for your authenticator app" ', 1))


def confirm_totp(session: Session, staff: StaffUser, code: str, *, actor: str) -> list[str]:
    """Confirm the pending authenticator app with its first code; returns new recovery codes (empty if kept).

    Raises ``InvalidInput`` for a wrong code or when no set-up is pending.
    """
    factor = session.scalar(
        select(StaffFactor).where(
            StaffFactor.staff_user_id == staff.id,
            StaffFactor.kind == FactorKind.TOTP,
            StaffFactor.confirmed_at.is_(None),
        )
    )
    if factor is None:
        raise InvalidInput("no authenticator app is being set up: start again")
    if not _accept_totp(session, factor, code):
        raise InvalidInput("that code does not match: type the 6 digits your app shows now")
    factor.confirmed_at = utcnow()
    audit(
        session,
        clinic_id=staff.clinic_id,
        actor=actor,
        action=AuditAction.STAFF_MFA_ENROLL,
        subject_type="staff_user",
        subject_id=staff.id,
        kind=FactorKind.TOTP.value,
    )
    session.flush()
    return _first_recovery_codes(session, staff)


def _accept_totp(session: Session, factor: StaffFactor, code: str) -> bool:
    """True when ``code`` is the factor's code for now (±1 step) and newer than the last accepted; records it."""
    code = "".join(code.split())
    if factor.secret is None or len(code) != DIGITS or not code.isdigit():
        return False
    now = _step(utcnow())
    for step in (now - 1, now, now + 1):
        if secrets.compare_digest(totp_code(factor.secret, step * STEP_SECONDS), code):
            moved = session.execute(
                update(StaffFactor)
                .where(StaffFactor.id == factor.id, or_(StaffFactor.last_step.is_(None), StaffFactor.last_step < step))
                .values(last_step=step, used_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            session.refresh(factor)
            return bool(getattr(moved, "rowcount", 0) == 1)
    return False


# --- recovery codes ---------------------------------------------------------------------------------


def _new_code() -> str:
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper
    raw = "".join(secrets.choice(alphabet) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def new_recovery_codes(session: Session, staff: StaffUser, *, actor: str) -> list[str]:
    """Ten fresh recovery codes (shown once); the old ones stop working."""
    session.execute(
        delete(StaffFactor).where(StaffFactor.staff_user_id == staff.id, StaffFactor.kind == FactorKind.RECOVERY)
    )
    codes = [_new_code() for _ in range(RECOVERY_CODES)]
    session.add_all(
        StaffFactor(
            staff_user_id=staff.id, kind=FactorKind.RECOVERY, label="Recovery code", code_hash=_code_hasher.hash(c)
        )
        for c in codes
    )
    audit(
        session,
        clinic_id=staff.clinic_id,
        actor=actor,
        action=AuditAction.STAFF_MFA_RECOVERY_CODES,
        subject_type="staff_user",
        subject_id=staff.id,
    )
    session.flush()
    return codes


def _first_recovery_codes(session: Session, staff: StaffUser) -> list[str]:
    if _count(session, staff.id, FactorKind.RECOVERY):
        return []
    return new_recovery_codes(session, staff, actor=staff.email)


def _accept_recovery(session: Session, staff_id: int, code: str) -> bool:
    code = code.strip().lower().replace(" ", "")
    if len(code) == 10:
        code = f"{code[:5]}-{code[5:]}"
    if len(code) != 11:
        return False
    unused = session.scalars(
        select(StaffFactor).where(
            StaffFactor.staff_user_id == staff_id,
            StaffFactor.kind == FactorKind.RECOVERY,
            StaffFactor.used_at.is_(None),
        )
    ).all()
    for factor in unused:
        try:
            _code_hasher.verify(factor.code_hash or "", code)
        except (VerificationError, InvalidHashError):
            continue
        used = session.execute(
            update(StaffFactor)
            .where(StaffFactor.id == factor.id, StaffFactor.used_at.is_(None))
            .values(used_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(used, "rowcount", 0) == 1)
    return False


# --- sign-in ------------------------------------------------------------------------------------------


def verify_code(session: Session, staff: StaffUser, code: str) -> FactorKind:
    """Check a second-factor code (authenticator app or recovery code) for ``staff``; returns which it was.

    Counted on the account's sign-in throttle: raises ``SecondFactorThrottled`` when it is
    exhausted, ``SecondFactorRefused`` for a wrong, reused or used-up code. A success gives its
    count back in the caller's session: commit it.
    """
    keys = [accounts.account_key(staff.email)]
    if not login_throttle.reserve(session, keys):
        raise SecondFactorThrottled("too many failed sign-ins; wait and try again")
    totp = session.scalar(
        select(StaffFactor).where(
            StaffFactor.staff_user_id == staff.id,
            StaffFactor.kind == FactorKind.TOTP,
            StaffFactor.confirmed_at.is_not(None),
        )
    )
    kind: FactorKind | None = None
    if totp is not None and _accept_totp(session, totp, code):
        kind = FactorKind.TOTP
    elif _accept_recovery(session, staff.id, code):
        kind = FactorKind.RECOVERY
    if kind is None:
        raise SecondFactorRefused("that code does not match, or it was used already")
    login_throttle.release(session, keys)
    if kind is FactorKind.RECOVERY:
        audit(
            session,
            clinic_id=staff.clinic_id,
            actor=staff.email,
            action=AuditAction.STAFF_MFA_RECOVERY_USED,
            subject_type="staff_user",
            subject_id=staff.id,
        )
    return kind


# --- what a staff member has, and must have -------------------------------------------------------------


def _count(session: Session, staff_id: int, kind: FactorKind) -> int:
    query = select(StaffFactor.id).where(StaffFactor.staff_user_id == staff_id, StaffFactor.kind == kind)
    if kind is FactorKind.RECOVERY:
        query = query.where(StaffFactor.used_at.is_(None))
    return len(session.scalars(query).all())


def _confirmed(session: Session, staff_id: int, kind: FactorKind) -> bool:
    return bool(
        session.scalar(
            select(StaffFactor.id).where(
                StaffFactor.staff_user_id == staff_id, StaffFactor.kind == kind, StaffFactor.confirmed_at.is_not(None)
            )
        )
    )


def has_second_factor(session: Session, staff_id: int) -> bool:
    """True when the account has a confirmed authenticator app or a passkey (recovery codes do not count)."""
    return _confirmed(session, staff_id, FactorKind.TOTP) or _confirmed(session, staff_id, FactorKind.PASSKEY)


def required_for(policy: MfaPolicy, role: Role) -> bool:
    """Whether the clinic's rule asks this role for a second factor."""
    return policy is MfaPolicy.ALL or (policy is MfaPolicy.ADMINS and role is Role.ADMIN)


def enrollment_needed(session: Session, staff: StaffUser) -> bool:
    """True when the clinic's rule covers ``staff`` and they have no second factor yet."""
    return required_for(staff.clinic.mfa_required, staff.role) and not has_second_factor(session, staff.id)


@dataclass(frozen=True)
class Summary:
    """What a staff member's security page shows."""

    totp: bool
    passkeys: list[StaffFactor]
    recovery_left: int


def summary(session: Session, staff_id: int) -> Summary:
    passkeys = session.scalars(
        select(StaffFactor)
        .where(StaffFactor.staff_user_id == staff_id, StaffFactor.kind == FactorKind.PASSKEY)
        .order_by(StaffFactor.id)
    ).all()
    return Summary(
        totp=_confirmed(session, staff_id, FactorKind.TOTP),
        passkeys=list(passkeys),
        recovery_left=_count(session, staff_id, FactorKind.RECOVERY),
    )


def set_policy(session: Session, clinic_id: int, policy: str | MfaPolicy, *, actor: str) -> MfaPolicy:
    """Set who in the clinic must sign in with a second factor; raises ``InvalidInput`` for an unknown rule."""
    try:
        chosen = MfaPolicy(policy)
    except ValueError:
        raise InvalidInput("choose who needs a second factor: none, admins or all") from None
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise InvalidInput(f"no clinic with id {clinic_id}")
    clinic.mfa_required = chosen
    audit(
        session,
        clinic_id=clinic_id,
        actor=actor,
        action=AuditAction.CLINIC_MFA_POLICY,
        subject_type="clinic",
        subject_id=clinic_id,
        policy=chosen.value,
    )
    session.flush()
    return chosen


def reset_factors(
    session: Session,
    staff_id: int,
    *,
    clinic_id: int | None = None,
    actor: str,
    actor_staff_id: int | None = None,
    proof: str | None = None,
) -> StaffUser:
    """Remove every second factor of an account (authenticator app, passkeys, recovery codes); audited.

    ``clinic_id`` limits it to that clinic's accounts (``NotFound`` otherwise). When the actor is the
    account itself (``actor_staff_id == staff_id``), ``proof`` must be a valid second-factor code:
    a stolen password and session must not be enough to strip someone's second factor.
    Raises ``InvalidInput`` (or ``SecondFactorRefused``) then.
    """
    staff = accounts.get_staff_in_clinic(session, clinic_id, staff_id)
    if actor_staff_id == staff.id and has_second_factor(session, staff.id):
        if not proof:
            raise InvalidInput("to reset your own second factors, type a code from your app or a recovery code")
        verify_code(session, staff, proof)
    session.execute(delete(StaffFactor).where(StaffFactor.staff_user_id == staff.id))
    audit(
        session,
        clinic_id=staff.clinic_id,
        actor=actor,
        action=AuditAction.STAFF_MFA_RESET,
        subject_type="staff_user",
        subject_id=staff.id,
    )
    session.flush()
    return staff
