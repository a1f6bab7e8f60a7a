"""Short-lived signed cookies for the steps between a password and a session.

- ``engage_mfa_pending``: "this browser gave the right password for staff N" — good for
  :data:`PENDING_SECONDS`, and only while N's password is unchanged (the cookie carries a digest
  of the password hash). The second-factor page reads it; it is never a session.
- ``engage_webauthn``: the challenge of a passkey ceremony in flight (registration or sign-in),
  good for :data:`CHALLENGE_SECONDS`, bound to its purpose and staff member.

Both are signed with the secret key (itsdangerous, a salt per purpose), HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response
from itsdangerous import BadData, URLSafeTimedSerializer

from engage.config import get_settings, secret_key

PENDING_COOKIE = "engage_mfa_pending"
CHALLENGE_COOKIE = "engage_webauthn"
PENDING_SECONDS = 300
CHALLENGE_SECONDS = 300


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key(), salt=f"engage-{purpose}")


def _secure() -> bool:
    return get_settings().public_url.startswith("https://")


def password_digest(password_hash: str) -> str:
    """What the pending cookie carries of the password hash: a reset makes old pending cookies worthless."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def set_pending(response: Response, staff_id: int, digest: str) -> None:
    """Remember for 5 minutes that this browser gave the password of ``staff_id`` (``digest``: its hash's digest)."""
    token = _serializer("mfa-pending").dumps({"staff": staff_id, "pw": digest})
    response.set_cookie(
        PENDING_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/login",
        secure=_secure(),
        max_age=PENDING_SECONDS,
    )


@dataclass(frozen=True)
class Pending:
    staff_id: int
    password_digest: str


def read_pending(request: Request) -> Pending | None:
    """The pending sign-in this browser carries, or None (absent, forged, or older than 5 minutes)."""
    raw = request.cookies.get(PENDING_COOKIE)
    if not raw:
        return None
    try:
        data = _serializer("mfa-pending").loads(raw, max_age=PENDING_SECONDS)
        return Pending(int(data["staff"]), str(data["pw"]))
    except (BadData, KeyError, TypeError, ValueError):
        return None


def clear_pending(response: Response) -> None:
    response.delete_cookie(PENDING_COOKIE, path="/login")


def set_challenge(response: Response, purpose: str, challenge: bytes, staff_id: int | None, path: str) -> None:
    token = _serializer("webauthn").dumps(
        {"p": purpose, "c": base64.urlsafe_b64encode(challenge).decode(), "s": staff_id}
    )
    response.set_cookie(
        CHALLENGE_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path=path,
        secure=_secure(),
        max_age=CHALLENGE_SECONDS,
    )


def read_challenge(request: Request, purpose: str, staff_id: int | None) -> bytes | None:
    """The challenge of this browser's ``purpose`` ceremony for ``staff_id``, or None."""
    raw = request.cookies.get(CHALLENGE_COOKIE)
    if not raw:
        return None
    try:
        data = _serializer("webauthn").loads(raw, max_age=CHALLENGE_SECONDS)
        if data["p"] != purpose or data["s"] != staff_id:
            return None
        return base64.urlsafe_b64decode(str(data["c"]))
    except (BadData, KeyError, TypeError, ValueError):
        return None
