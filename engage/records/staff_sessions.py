"""Server-side staff sessions: the browser's cookie holds a random id, the ``staff_session`` table the rest.

Only the id's SHA-256 is stored, so a copy of the table signs nobody in. A session
ends after ``settings.session_idle_minutes`` without a request, or
``settings.session_absolute_hours`` after sign-in, whichever comes first. Each
session carries its own CSRF token, which every form posts back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.config import get_settings
from engage.records.audit import AuditAction, audit
from engage.records.models import StaffSession, StaffUser

#: Refresh ``last_seen_at`` at most this often, so reading pages does not write on every request.
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class SignedIn:
    """A live session: who, the session row's id, and the CSRF token its forms carry."""

    staff: StaffUser
    session_id: int
    csrf_token: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, staff: StaffUser) -> str:
    """A new session for ``staff``; returns the random token for the cookie (shown once, stored hashed)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        StaffSession(
            token_hash=_digest(token),
            staff_user_id=staff.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
        )
    )
    audit(
        session,
        clinic_id=staff.clinic_id,
        actor=staff.email,
        action=AuditAction.STAFF_LOGIN,
        subject_type="staff_user",
        subject_id=staff.id,
    )
    session.flush()
    return token


def resume_session(session: Session, token: str | None) -> SignedIn | None:
    """The live session for a cookie's token, its idle clock refreshed; None when absent, expired or deactivated.

    An expired session's row is deleted.
    """
    if not token:
        return None
    row = session.scalar(select(StaffSession).where(StaffSession.token_hash == _digest(token)))
    if row is None:
        return None
    settings = get_settings()
    now = utcnow()
    expired = now - row.last_seen_at > timedelta(
        minutes=settings.session_idle_minutes
    ) or now - row.created_at > timedelta(hours=settings.session_absolute_hours)
    if expired or not row.staff.active:
        session.delete(row)
        session.flush()
        return None
    if now - row.last_seen_at >= _TOUCH_EVERY:
        row.last_seen_at = now
        session.flush()
    return SignedIn(staff=row.staff, session_id=row.id, csrf_token=row.csrf_token)


def end_session(session: Session, token: str | None) -> None:
    """Sign out: the session's row is deleted (the cookie's token is worthless from now on)."""
    if token:
        session.execute(delete(StaffSession).where(StaffSession.token_hash == _digest(token)))


def csrf_matches(signed_in: SignedIn, given: str | None) -> bool:
    """True when a form's CSRF token is this session's (constant-time comparison)."""
    return bool(given) and hmac.compare_digest(signed_in.csrf_token.encode(), (given or "").encode())
