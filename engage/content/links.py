"""Signed tokens for the links patients click (unsubscribe, reassessment answers).

Tokens are signed with the secret key (``ENGAGE_SECRET_KEY``, or on SQLite the key kept
beside the database: :func:`engage.config.secret_key`; itsdangerous, HMAC), salted by
purpose so an unsubscribe token can never be replayed as a reassessment token.
They do not expire: an unsubscribe link in a year-old email must still work
(RFC 8058, CAN-SPAM). They carry ids only, never names, phones or emails.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from itsdangerous import BadData, URLSafeSerializer

from engage.config import get_settings, secret_key

UNSUBSCRIBE = "unsubscribe"
REASSESSMENT = "reassessment"


class InvalidToken(ValueError):
    """The token is malformed, forged, altered, or made for another purpose."""


def _serializer(purpose: str) -> URLSafeSerializer:
    return _serializer_for(secret_key(), purpose)


@lru_cache(maxsize=16)
def _serializer_for(key: str, purpose: str) -> URLSafeSerializer:
    # One per key and purpose for the process: building one derives its signing key again.
    return URLSafeSerializer(key, salt=purpose)


def make_token(purpose: str, payload: dict[str, Any]) -> str:
    """A URL-safe signed token carrying ``payload`` (JSON-serialisable ids only)."""
    token = _serializer(purpose).dumps(payload)
    return token if isinstance(token, str) else token.decode()


def read_token(purpose: str, token: str) -> dict[str, Any]:
    """The payload of a token made by :func:`make_token` for ``purpose``; raises :class:`InvalidToken`."""
    try:
        payload = _serializer(purpose).loads(token)
    except BadData as exc:
        raise InvalidToken("invalid or altered link") from exc
    if not isinstance(payload, dict):
        raise InvalidToken("invalid or altered link")
    return payload


def _public(path: str) -> str:
    return get_settings().public_url.rstrip("/") + path


def _channel_value(channel: Any) -> str:
    return str(getattr(channel, "value", channel))


def unsubscribe_url(patient_id: int, channel: Any) -> str:
    """``{ENGAGE_PUBLIC_URL}/u/{token}`` for one patient and channel (``Channel`` or ``"email"``/``"sms"``)."""
    token = make_token(UNSUBSCRIBE, {"patient_id": patient_id, "channel": _channel_value(channel)})
    return _public(f"/u/{token}")


def read_unsubscribe_token(token: str) -> tuple[int, str]:
    """``(patient_id, channel)`` from an unsubscribe token; raises :class:`InvalidToken`."""
    payload = read_token(UNSUBSCRIBE, token)
    patient_id, channel = payload.get("patient_id"), payload.get("channel")
    if not isinstance(patient_id, int) or not isinstance(channel, str):
        raise InvalidToken("invalid or altered link")
    return patient_id, channel


def reassessment_url(message_id: int, score: int | None) -> str:
    """``{ENGAGE_PUBLIC_URL}/r/{token}``, plus ``?score=N`` for a one-click answer.

    The token names the prompt (our message id); the score is a plain query
    parameter because the form page lets the patient change it anyway.
    """
    token = make_token(REASSESSMENT, {"message_id": message_id})
    url = _public(f"/r/{token}")
    return url if score is None else _with_score(url, score)


def _with_score(url: str, score: int) -> str:
    return f"{url}?score={int(score)}"


def reassessment_urls(message_id: int) -> tuple[str, list[tuple[int, str]]]:
    """The form's URL and the eleven one-click URLs (scores 0-10) of one prompt, signing its token once."""
    form = reassessment_url(message_id, None)
    return form, [(score, _with_score(form, score)) for score in range(11)]


#: The "token" of every link in a preview: visibly not real, and not a signed token, so the server
#: answers it with the invalid-link page. A preview for a real patient must never hand out their links.
PREVIEW_TOKEN = "preview"


def preview_unsubscribe_url() -> str:
    """``{ENGAGE_PUBLIC_URL}/u/preview``: the unsubscribe link shown in previews."""
    return _public(f"/u/{PREVIEW_TOKEN}")


def preview_reassessment_url(score: int | None) -> str:
    """``{ENGAGE_PUBLIC_URL}/r/preview[?score=N]``: the reassessment links shown in previews."""
    url = _public(f"/r/{PREVIEW_TOKEN}")
    return url if score is None else f"{url}?score={int(score)}"


def read_reassessment_token(token: str) -> int:
    """The prompt's message id from a reassessment token; raises :class:`InvalidToken`."""
    message_id = read_token(REASSESSMENT, token).get("message_id")
    if not isinstance(message_id, int):
        raise InvalidToken("invalid or altered link")
    return message_id


EXERCISES = "exercises"


def exercises_url(plan_id: int) -> str:
    """``{ENGAGE_PUBLIC_URL}/x/{token}``: the page showing the exercises the plan's practitioner picked."""
    return _public(f"/x/{make_token(EXERCISES, {'plan_id': plan_id})}")


def preview_exercises_url() -> str:
    """A visibly fake exercises link for previews and checks (like :func:`preview_unsubscribe_url`)."""
    return _public(f"/x/{PREVIEW_TOKEN}")


def read_exercises_token(token: str) -> int:
    """The plan id from an exercises token; raises :class:`InvalidToken`."""
    plan_id = read_token(EXERCISES, token).get("plan_id")
    if not isinstance(plan_id, int):
        raise InvalidToken("invalid or altered link")
    return plan_id


INTAKE = "intake"


def intake_url(patient_id: int) -> str:
    """``{ENGAGE_PUBLIC_URL}/q/{token}``: the page where a patient gives baseline pain and PSFS before treatment.

    The payload's key is one letter: the link rides in the welcome SMS, whose two segments it shares with the
    CTIA wording and a 40-character clinic name (``patient_id`` would cost 12 characters more)."""
    return _public(f"/q/{make_token(INTAKE, {'p': patient_id})}")


def longest_intake_url() -> str:
    """A real-shaped intake link as long as any patient's (a nine-digit id), for ``templates check`` to count."""
    return intake_url(999_999_999)


def preview_intake_url() -> str:
    """A visibly fake intake link for previews and checks (like :func:`preview_unsubscribe_url`)."""
    return _public(f"/q/{PREVIEW_TOKEN}")


def read_intake_token(token: str) -> int:
    """The patient id from an intake token; raises :class:`InvalidToken`."""
    payload = read_token(INTAKE, token)
    patient_id = payload.get("p", payload.get("patient_id"))  # links sent before the key was shortened
    if not isinstance(patient_id, int):
        raise InvalidToken("invalid or altered link")
    return patient_id
