"""API tokens: a bearer token acts as its staff user (same clinic, same role).

The token is shown once, when it is made; only its SHA-256 is stored (``api_token.token_hash``).
A slow password hash would buy nothing here: a token is 256 random bits, not a word a
person chose, and every API request checks one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.errors import InvalidInput, NotFound
from engage.records.audit import AuditAction, audit
from engage.records.models import ApiToken, Role, StaffUser

PREFIX = "eng_"


@dataclass(frozen=True)
class Caller:
    """Who an API request acts as: the token's staff user."""

    staff_id: int
    clinic_id: int
    email: str
    role: Role
    token_id: int

    @property
    def actor(self) -> str:
        return f"api:{self.email}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session, *, staff_email: str, label: str = "", actor: str, clinic_id: int | None = None
) -> tuple[ApiToken, str]:
    """A new token for the active staff user with ``staff_email`` (in ``clinic_id``): (the row, the token text,
    shown only now).

    Raises ``NotFound`` for an unknown or inactive staff user, ``InvalidInput`` for a label over 100 characters
    or an address that staff at several clinics share when no clinic is given.
    """
    staff = _staff_by_email(session, staff_email, clinic_id)
    if len(label) > 100:
        raise InvalidInput("a token label is at most 100 characters")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(staff_user_id=staff.id, token_hash=hash_token(token), label=label.strip(), created_at=utcnow())
    session.add(row)
    session.flush()
    audit(
        session,
        clinic_id=staff.clinic_id,
        actor=actor,
        action=AuditAction.API_TOKEN_CREATE,
        subject_type="api_token",
        subject_id=row.id,
        staff_user_id=staff.id,
    )
    return row, token


def list_tokens(session: Session, *, staff_email: str | None = None, clinic_id: int | None = None) -> list[ApiToken]:
    """Tokens (revoked ones too), oldest first, of one staff user, of one clinic, or all."""
    query = select(ApiToken).join(StaffUser, StaffUser.id == ApiToken.staff_user_id).order_by(ApiToken.id)
    if staff_email is not None:
        query = query.where(StaffUser.id == _staff_by_email(session, staff_email, clinic_id).id)
    if clinic_id is not None:
        query = query.where(StaffUser.clinic_id == clinic_id)
    return list(session.scalars(query))


def revoke_token(session: Session, token_id: int, *, clinic_id: int | None = None, actor: str) -> ApiToken:
    """Revoke a token (revoking twice keeps the first time). ``clinic_id`` limits it to that clinic's tokens."""
    row = session.get(ApiToken, token_id)
    staff = session.get(StaffUser, row.staff_user_id) if row is not None else None
    if row is None or staff is None or (clinic_id is not None and staff.clinic_id != clinic_id):
        raise NotFound(f"no API token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
        audit(
            session,
            clinic_id=staff.clinic_id,
            actor=actor,
            action=AuditAction.API_TOKEN_REVOKE,
            subject_type="api_token",
            subject_id=row.id,
        )
    return row


def authenticate(session: Session, token: str) -> Caller | None:
    """The caller a bearer token stands for, or None (unknown, revoked, or its staff user deactivated)."""
    if not token.startswith(PREFIX):
        return None
    found = session.execute(
        select(ApiToken.id, StaffUser)
        .join(StaffUser, StaffUser.id == ApiToken.staff_user_id)
        .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
    ).first()
    if found is None or not found[1].active:
        return None
    token_id, staff = found
    return Caller(staff_id=staff.id, clinic_id=staff.clinic_id, email=staff.email, role=staff.role, token_id=token_id)


def token_json(row: ApiToken, staff_email: str | None = None) -> dict[str, Any]:
    """A token as staff see it later: never the token itself."""
    return {
        "id": row.id,
        "staff_user_id": row.staff_user_id,
        "staff_email": staff_email,
        "label": row.label,
        "created_at": row.created_at.isoformat(),
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


def _staff_by_email(session: Session, email: str, clinic_id: int | None = None) -> StaffUser:
    """The active account with this address (in ``clinic_id``); an address is unique per clinic only."""
    query = select(StaffUser).where(func.lower(StaffUser.email) == email.strip().lower(), StaffUser.active)
    if clinic_id is not None:
        query = query.where(StaffUser.clinic_id == clinic_id)
    found = session.scalars(query.limit(2)).all()
    if not found:
        raise NotFound(f"no active staff user with email {email.strip()!r}")
    if len(found) > 1:
        raise InvalidInput(f"staff at several clinics use {email.strip()!r}: say which clinic (--clinic)")
    return found[0]
