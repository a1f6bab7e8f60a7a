"""``Idempotency-Key``: a retried request gets the first answer and creates nothing (Stripe's model).

The key is stored with the response in the same transaction as the work it answers,
so either both are written or neither is. Keys belong to the staff user (a token acts
as its user): two users cannot collide on a key.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.errors import InvalidInput
from engage.records.models import IdempotencyKey

MAX_KEY_LENGTH = 200


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """SHA-256 of the method, the path and the body as canonical JSON (key order does not matter)."""
    canonical = json.dumps([method.upper(), path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def recall(session: Session, staff_user_id: int, key: str, fingerprint: str) -> tuple[int, Any] | None:
    """The stored (status, response) for ``key``, or None when it is new.

    Raises ``InvalidInput`` when the key was used for a different request: reusing a key
    for other work is a client bug, and answering with the first response would hide it.
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"an Idempotency-Key has 1 to {MAX_KEY_LENGTH} characters", field="header:Idempotency-Key")
    row = session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.staff_user_id == staff_user_id, IdempotencyKey.key == key)
    )
    if row is None:
        return None
    if row.request_hash != fingerprint:
        raise InvalidInput(
            "this Idempotency-Key was already used with a different request; use a new key for new work",
            field="header:Idempotency-Key",
        )
    return row.status_code, row.response["body"]


def remember(session: Session, staff_user_id: int, key: str, fingerprint: str, status_code: int, body: Any) -> None:
    """Store the answer to ``key`` (a concurrent first use of the same key fails on the unique constraint)."""
    session.add(
        IdempotencyKey(
            staff_user_id=staff_user_id,
            key=key,
            request_hash=fingerprint,
            status_code=status_code,
            response={"body": body},
            created_at=utcnow(),
        )
    )
    session.flush()
