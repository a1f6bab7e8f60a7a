"""Email through SendGrid's v3 Mail Send API, with the official ``sendgrid`` SDK.

``settings.sendgrid_api_base`` replaces ``https://api.sendgrid.com`` so staging
and tests can point the real SDK at a local fake. Our message id rides along as
``custom_args.engage_message_id``; SendGrid echoes custom args in every event
webhook, so the webhook finds the row without trusting SendGrid's id.

The SDK (python-http-client over urllib) never retries; retrying is the
dispatcher's decision. urllib tells us when a transport failure happened:
while connecting or writing the request it raises ``URLError`` (SendGrid has
no complete request: ``connection`` / ``connect_timeout``, safe to retry);
while waiting for or reading the answer the raw ``OSError`` /
``http.client.HTTPException`` comes through (SendGrid may have accepted the
email: ``read_timeout`` / ``connection_lost``, never retried blindly).

A 401 (the API key was refused) is a :class:`ConfigurationError`: every email
would fail the same way.

Events from SendGrid's event webhook are put in our words here (:func:`normalize_events`,
anymail's "normalize" step): our status for each event word, our message id from the custom
arg, SendGrid's message id, and for a bounce or a drop the :class:`RejectReason` that
``engage.conversation.consent`` turns into an opt-out (or not).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import re
import socket
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, ClassVar

import python_http_client.client
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Attachment,
    Category,
    Content,
    CustomArg,
    Disposition,
    FileContent,
    FileName,
    FileType,
    From,
    Header,
    Mail,
    To,
)

from engage import clock
from engage.config import Settings
from engage.conversation.consent import RejectReason
from engage.delivery.providers.base import (
    Accepted,
    ConfigurationError,
    OutgoingEmail,
    ProviderError,
    parse_retry_after,
    redact,
)
from engage.records.models import MessageStatus

# python-http-client logs whole payloads (addresses, bodies) at DEBUG.
logging.getLogger("python_http_client.client").setLevel(logging.INFO)


class _OneOpener:
    """``urllib.request`` as python-http-client sees it, with one opener per process instead of one per request.

    The SDK calls ``urllib.build_opener()`` for every email: ten handler objects, and a walk through all of
    ``os.environ`` for proxy settings, about half of an email's provider-call CPU. An opener keeps no
    connection between requests (urllib opens one per request), so one is shared like ``urlopen``'s own;
    the environment's proxies are read when it is built.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opener: urllib.request.OpenerDirector | None = None

    def build_opener(self) -> urllib.request.OpenerDirector:
        with self._lock:
            if self._opener is None:
                self._opener = urllib.request.build_opener()
            return self._opener

    def __getattr__(self, name: str) -> Any:
        return getattr(urllib.request, name)


_SHARED_URLLIB = _OneOpener()
python_http_client.client.urllib = _SHARED_URLLIB  # type: ignore[attr-defined]

CUSTOM_ARG = "engage_message_id"
PERMANENT_STATUSES = frozenset({400, 403, 404, 413})


class SendGridEmail:
    """Sends email through SendGrid. Raises ConfigurationError at construction without an API key."""

    name: ClassVar[str] = "sendgrid"

    def __init__(self, settings: Settings) -> None:
        if not settings.sendgrid_api_key:
            raise ConfigurationError("sendgrid: SENDGRID_API_KEY must be set")
        self._client = SendGridAPIClient(api_key=settings.sendgrid_api_key, host=settings.sendgrid_api_base.rstrip("/"))
        # The SDK builds one python_http_client.Client at construction; its
        # timeout is inherited by every request (urllib's default is none at all).
        self._client.client.timeout = settings.http_timeout_seconds

    def send_email(self, msg: OutgoingEmail) -> Accepted:
        """POST /v3/mail/send; returns SendGrid's ``X-Message-Id``. Raises ProviderError (classified)."""
        try:
            body = build_mail(msg)
        except (KeyError, ValueError, TypeError, AttributeError):
            # The SDK's helpers reject what SendGrid would answer 400 to (an address without "@").
            raise ProviderError(
                "could not build the request (invalid address?)",
                provider=self.name,
                permanent=True,
                code="invalid_payload",
                message_id=msg.message_id,
            ) from None
        try:
            response = self._client.send(body)
        except HTTPError as exc:
            raise _classify_http(exc, msg.message_id) from None
        except TimeoutError as exc:
            raise ProviderError(
                "read timeout (the message may have been accepted)",
                provider=self.name,
                code="read_timeout",
                message_id=msg.message_id,
            ) from exc
        except urllib.error.URLError as exc:
            # urllib raises URLError only around connecting and writing the request (do_open): nothing complete
            # reached SendGrid.
            timed_out = isinstance(exc.reason, (TimeoutError, socket.timeout))
            raise ProviderError(
                "connect timeout" if timed_out else "connection error (nothing was sent)",
                provider=self.name,
                code="connect_timeout" if timed_out else "connection",
                message_id=msg.message_id,
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            # Reading the answer failed (RemoteDisconnected, a reset, a truncated body): SendGrid had the request.
            raise ProviderError(
                f"connection lost after the request ({type(exc).__name__}); the message may have been accepted",
                provider=self.name,
                code="connection_lost",
                message_id=msg.message_id,
            ) from None
        provider_id = _header(response.headers, "X-Message-Id")
        if not provider_id:
            # 202 without an id: accepted all the same; the webhook carries our id.
            provider_id = f"sendgrid-{msg.message_id}"
        return Accepted(provider_message_id=provider_id, status="sent")


def build_mail(msg: OutgoingEmail) -> dict[str, Any]:
    """The v3 mail/send JSON body for ``msg``: text then HTML part, headers, categories, our id as a custom arg,
    and the attachments (base64, as SendGrid wants them)."""
    mail = Mail(from_email=From(msg.from_email, msg.from_name or None), to_emails=To(msg.to), subject=msg.subject)
    # RFC 2046: the last alternative is the preferred one, so text/plain comes first.
    mail.add_content(Content("text/plain", msg.text))
    mail.add_content(Content("text/html", msg.html))
    for key, value in msg.headers.items():
        mail.add_header(Header(key, value))
    for category in msg.categories:
        mail.add_category(Category(category))
    mail.add_custom_arg(CustomArg(CUSTOM_ARG, str(msg.message_id)))
    for attachment in msg.attachments:
        mail.add_attachment(
            Attachment(
                FileContent(base64.b64encode(attachment.data).decode("ascii")),
                FileName(attachment.filename),
                FileType(attachment.content_type),
                Disposition("attachment"),
            )
        )
    body: dict[str, Any] = mail.get()
    return body


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name)
    return str(value) if value else None


def _classify_http(exc: HTTPError, message_id: int) -> ProviderError:
    """A ProviderError for SendGrid's error answer; raises ConfigurationError when the API key was refused."""
    status = int(exc.status_code)
    if status == 401:
        raise ConfigurationError("sendgrid: the API key was refused (HTTP 401); check SENDGRID_API_KEY")
    excerpt = _error_excerpt(exc.body)
    if status == 429:
        retry_after = parse_retry_after(_header(exc.headers, "Retry-After"))
        reset = _header(exc.headers, "X-RateLimit-Reset")
        if retry_after is None and reset and reset.isdigit():
            # SendGrid documents X-RateLimit-Reset (epoch seconds) rather than Retry-After.
            retry_after = max(0.0, int(reset) - clock.utcnow().timestamp())
        return ProviderError(
            "rate limited",
            provider=SendGridEmail.name,
            status=status,
            message_id=message_id,
            retry_after=retry_after,
            response_excerpt=excerpt,
        )
    permanent = status in PERMANENT_STATUSES or (400 <= status < 500 and status != 408)
    return ProviderError(
        "request rejected" if permanent else "server error",
        provider=SendGridEmail.name,
        permanent=permanent,
        status=status,
        message_id=message_id,
        response_excerpt=excerpt,
    )


def _error_excerpt(body: bytes | str | None) -> str:
    """SendGrid's ``{"errors": [{"message", "field"}]}`` in one line (redacted by ProviderError)."""
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        payload = json.loads(text)
        errors = payload.get("errors") or []
        return (
            "; ".join(
                f"{e['field']}: {e.get('message')}" if e.get("field") else str(e.get("message"))
                for e in errors
                if isinstance(e, dict)
            )
            or text
        )
    except (ValueError, AttributeError):
        return text


# --- event webhook: SendGrid's words -> ours ------------------------------------------------------

#: SendGrid event webhook ``event`` values. Engagement and list events change no status.
SENDGRID_EVENTS: dict[str, MessageStatus | None] = {
    "processed": MessageStatus.SENT,
    "deferred": MessageStatus.SENT,  # the receiving server said "later"; SendGrid keeps trying
    "delivered": MessageStatus.DELIVERED,
    "bounce": MessageStatus.BOUNCED,
    "blocked": MessageStatus.BOUNCED,
    "dropped": MessageStatus.FAILED,
    "open": None,
    "click": None,
    "spamreport": None,
    "unsubscribe": None,
    "group_unsubscribe": None,
    "group_resubscribe": None,
}

#: ``dropped`` reasons (lower case), each about the address itself; any other drop reason is ``OTHER``.
DROP_REASONS: dict[str, RejectReason] = {
    "invalid": RejectReason.INVALID,
    "invalid email": RejectReason.INVALID,
    "invalid address": RejectReason.INVALID,
    "bounced address": RejectReason.BOUNCED,
    "unsubscribed address": RejectReason.UNSUBSCRIBED,
    "spam reporting address": RejectReason.SPAM,
}

_OUR_ID = re.compile(r"[0-9]{1,9}")  # ASCII digits only, and small enough for an INTEGER column


@dataclass(frozen=True)
class EmailEvent:
    """One SendGrid event in our words: which message (our id, else SendGrid's), what it means, and the raw event."""

    name: str  # SendGrid's event word, lower case
    event_id: str  # ``sg_event_id`` (or a digest): a repeat is dropped
    status: MessageStatus | None  # None: history only (opens, clicks, list events)
    message_id: int | None  # our id, from the ``engage_message_id`` custom arg
    x_message_id: str | None  # SendGrid's id, as its send API returned it (``X-Message-Id``)
    reject_reason: RejectReason | None  # for a bounce or a drop: why
    error: str | None  # free of addresses; becomes ``last_error`` on a failure
    error_code: str | None
    payload: dict[str, Any]


def sendgrid_status(event: str | None) -> MessageStatus | None:
    """Our status for a SendGrid event name; None for engagement/list events and unknown names."""
    return SENDGRID_EVENTS.get((event or "").strip().lower())


def normalize_events(batch: list[Any]) -> list[EmailEvent]:
    """Each event of a verified, parsed batch (a JSON array; non-objects are skipped) in our words."""
    return [normalize_event(event) for event in batch if isinstance(event, dict)]


def normalize_event(event: dict[str, Any]) -> EmailEvent:
    """One SendGrid event in our words (see :class:`EmailEvent`)."""
    name = str(event.get("event") or "").strip().lower()
    reason = str(event.get("reason") or event.get("response") or "")
    legacy = event.get("unique_args")  # very old accounts nest custom args
    arg = str(event.get(CUSTOM_ARG) or (legacy.get(CUSTOM_ARG) if isinstance(legacy, dict) else "") or "").strip()
    reject_reason: RejectReason | None = None
    if name == "bounce":
        blocked = str(event.get("type") or "bounce").lower() == "blocked"
        reject_reason = RejectReason.BLOCKED if blocked else RejectReason.BOUNCED
    elif name == "dropped":
        reject_reason = DROP_REASONS.get(str(event.get("reason") or "").strip().lower(), RejectReason.OTHER)
    return EmailEvent(
        name=name,
        event_id=event_id(event),
        status=sendgrid_status(name),
        message_id=int(arg) if _OUR_ID.fullmatch(arg) else None,
        x_message_id=x_message_id(event),
        reject_reason=reject_reason,
        # SMTP replies quote the recipient's address: redact before it becomes last_error.
        error=f"sendgrid {name}: {redact(reason, 400)}" if reason else None,
        error_code=str(event.get("status") or "") or None,
        payload=event,
    )


def event_id(event: dict[str, Any]) -> str:
    """``sg_event_id``, or (older accounts send none) a digest of the event itself."""
    sg_event_id = event.get("sg_event_id")
    if sg_event_id:
        return str(sg_event_id)[:200]
    return "sha256:" + hashlib.sha256(json.dumps(event, sort_keys=True, default=str).encode()).hexdigest()


def x_message_id(event: dict[str, Any]) -> str | None:
    """The ``X-Message-Id`` the send API returned: ``sg_message_id`` is "<X-Message-Id>.filter…"."""
    sg_message_id = str(event.get("sg_message_id") or "").strip()
    return sg_message_id.split(".", 1)[0] or None
