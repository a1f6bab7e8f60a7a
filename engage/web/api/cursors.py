"""Page cursors the API gives out: opaque, tamper-evident, and bound to the list they page.

A cursor carries where the next page starts (for ``/patients``: the last row's sort key,
which holds its names), so it is encrypted and authenticated (Fernet: AES-CBC + HMAC-SHA256,
under a key derived from the secret key): a URL or a proxy log never shows a patient's
name, and a cursor we did not make, altered, made for another list, another clinic or
another search is refused with 422 (``field`` ``query:cursor``), never read as a place
to start.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engage.config import secret_key
from engage.errors import InvalidInput

_NOT_OURS = "this cursor is not one the API gave out; start again without it"
_OTHER_LIST = "this cursor belongs to another list or search; start again without it"


def make_cursor(kind: str, scope: dict[str, Any], position: list[Any]) -> str:
    """A cursor for the list ``kind`` (e.g. ``patients``) under ``scope`` (clinic, filters) at ``position``."""
    payload = {"k": kind, "s": _digest(scope), "p": position}
    return _fernet(secret_key()).encrypt(json.dumps(payload, separators=(",", ":")).encode()).decode()


def read_cursor(kind: str, scope: dict[str, Any], cursor: str) -> list[Any]:
    """The position a :func:`make_cursor` cursor holds; ``InvalidInput`` (field ``query:cursor``) for one we
    did not make or one made for another ``kind`` or ``scope``."""
    try:
        payload = json.loads(_fernet(secret_key()).decrypt(cursor.encode()))
    except (InvalidToken, ValueError, UnicodeError):
        raise InvalidInput(_NOT_OURS, field="query:cursor") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("p"), list):
        raise InvalidInput(_NOT_OURS, field="query:cursor")
    if payload.get("k") != kind or payload.get("s") != _digest(scope):
        raise InvalidInput(_OTHER_LIST, field="query:cursor")
    return payload["p"]


def _digest(scope: dict[str, Any]) -> str:
    # A digest, not the filters themselves: a search text may be a patient's name or phone number.
    return hashlib.sha256(json.dumps(scope, sort_keys=True).encode()).hexdigest()[:22]


@lru_cache(maxsize=4)
def _fernet(key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"engage api cursor").derive(key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))
