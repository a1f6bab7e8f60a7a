"""How the fake reads and answers vendor payloads: our message id, segments, credentials,
SendGrid's request checks, and Twilio's status callbacks (signed like Twilio, sent from a thread)."""

from __future__ import annotations

import base64
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.fakes.state import FakeState


def message_id_from_callback(url: str | None) -> int | None:
    """Our message id from a StatusCallback URL: query message_id / m / id, else the last all-digit path segment."""
    if not url:
        return None
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    for name in ("message_id", "engage_message_id", "m", "id"):
        values = query.get(name)
        if values and values[0].isdigit():
            return int(values[0])
    for segment in reversed([s for s in parts.path.split("/") if s]):
        if segment.isdigit():
            return int(segment)
    return None


def _segments(body: str) -> int:
    try:
        from engage.content.sms_text import segment_info
    except ImportError:  # the fake must start even where engage is half-written
        return 1
    return segment_info(body)[1]


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) from a Basic Authorization header, or None."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:]).decode()
    except ValueError:
        return None
    name, _, password = decoded.partition(":")
    return (name, password) if name and password else None


class _CallbackSender:
    """Posts Twilio status callbacks from one background thread, in order, signed like Twilio.

    The signature (X-Twilio-Signature: HMAC-SHA1 of URL + sorted params, keyed
    by the auth token) uses the token the client authenticated with, so engage's
    webhook verifies it exactly as it would a real one.
    """

    def __init__(self, state: FakeState) -> None:
        self._state = state
        self._queue: queue.Queue[tuple[str, str, dict[str, str], list[str]]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="fake-callbacks", daemon=True)
        self._thread.start()

    def enqueue(self, url: str, token: str, params: dict[str, str], statuses: list[str]) -> None:
        self._queue.put((url, token, params, list(statuses)))

    def _run(self) -> None:
        from twilio.request_validator import RequestValidator

        while True:
            url, token, params, statuses = self._queue.get()
            for status in statuses:
                form = {**params, "MessageStatus": status, "SmsStatus": status}
                signature = RequestValidator(token).compute_signature(url, form)
                request = urllib.request.Request(
                    url,
                    data=urlencode(form).encode(),
                    method="POST",
                    headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
                )
                entry: dict[str, Any] = {
                    "url": url,
                    "message_sid": params["MessageSid"],
                    "status": status,
                    "sent_at": time.time(),
                }
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - test fake
                        entry["http_status"] = response.status
                except urllib.error.HTTPError as exc:
                    entry["http_status"] = exc.code
                except OSError as exc:
                    entry["http_status"], entry["error"] = None, type(exc).__name__
                self._state.record_callback(entry)


def _email_entry(payload: dict[str, Any]) -> dict[str, Any]:
    personalization = (payload.get("personalizations") or [{}])[0]
    custom_args = {**(payload.get("custom_args") or {}), **(personalization.get("custom_args") or {})}
    content = {c.get("type"): c.get("value") for c in payload.get("content") or []}
    message_id = custom_args.get("engage_message_id")
    sender = payload.get("from") or {}
    return {
        "kind": "email",
        "message_id": int(str(message_id)) if str(message_id).isdigit() else None,
        "to": ((personalization.get("to") or [{}])[0]).get("email"),
        "from": sender.get("email"),
        "from_name": sender.get("name"),
        "subject": personalization.get("subject") or payload.get("subject"),
        "text": content.get("text/plain"),
        "html": content.get("text/html"),
        "content_types": [c.get("type") for c in payload.get("content") or []],
        "headers": {**(payload.get("headers") or {}), **(personalization.get("headers") or {})},
        "categories": payload.get("categories") or [],
        "custom_args": custom_args,
        "attachments": payload.get("attachments") or [],
        "received_at": time.time(),
    }


def _sendgrid_problem(payload: dict[str, Any]) -> tuple[str, str] | None:
    """SendGrid's own validation, the parts we rely on."""
    personalizations = payload.get("personalizations") or []
    if not personalizations or not personalizations[0].get("to"):
        return "The personalizations field is required and must have at least one personalization.", "personalizations"
    to = personalizations[0]["to"][0].get("email") or ""
    if "@" not in to:
        return "Does not contain a valid address.", "personalizations.0.to.0.email"
    if not (payload.get("from") or {}).get("email"):
        return "The from object must be provided for every email send.", "from"
    if not (personalizations[0].get("subject") or payload.get("subject")):
        return "The subject is required.", "subject"
    if not payload.get("content"):
        return "Unless a valid template_id is provided, the content parameter is required.", "content"
    return None
