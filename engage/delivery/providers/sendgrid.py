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
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import socket
import urllib.error
from typing import Any, ClassVar

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
from engage.delivery.providers.base import Accepted, ConfigurationError, OutgoingEmail, ProviderError, parse_retry_after

# python-http-client logs whole payloads (addresses, bodies) at DEBUG.
logging.getLogger("python_http_client.client").setLevel(logging.INFO)

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
