"""What every provider shares: the messages handed to it, what it returns, how it fails.

A provider turns one :class:`OutgoingSms` or :class:`OutgoingEmail` into one
vendor API call and returns :class:`Accepted` with the vendor's id, or raises:

- :class:`ProviderError` with ``permanent=True`` when a retry can never help
  (invalid number, unsubscribed recipient, rejected payload);
- :class:`ProviderError` with ``permanent=False`` when it might (429, 5xx,
  timeouts, connection errors), with ``retry_after`` when the vendor said when;
- :class:`ConfigurationError` when engage itself is set up wrongly (missing or
  refused credentials, no such account, unknown provider name). The dispatcher must let it stop the
  process loudly: retrying or failing messages one by one would burn the outbox.

Neither error ever carries a phone number, an email address or a message body:
they end up in logs, Celery results and ``Message.last_error``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import ClassVar, Protocol, runtime_checkable

from engage import clock

EXCERPT_CHARS = 200

# Vendors echo the recipient in their error texts (Twilio: "The 'To' number
# +15005550001 is not a valid phone number."), so every excerpt is scrubbed.
_EMAIL_RE = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+")
_PHONE_RE = re.compile(r"\+?\d[\d\s().-]{5,}\d")


def redact(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` with email addresses and phone-like digit runs replaced, cut to ``limit`` characters."""
    text = _EMAIL_RE.sub("[email]", text)
    text = _PHONE_RE.sub("[number]", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when: datetime = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - clock.utcnow()).total_seconds())


class ProviderError(Exception):
    """A send that did not go through.

    ``permanent``: retrying cannot help; mark the message failed.
    ``retry_after``: seconds the vendor asked us to wait (429), or None.
    ``status`` / ``code``: HTTP status and vendor error code (Twilio's ``21610``)
    or our own short tag for transport failures: ``connection`` / ``connect_timeout``
    when nothing was sent (refused, DNS, connect timeout; safe to retry);
    ``read_timeout`` / ``connection_lost`` when the request may have reached the
    vendor and the message may have been accepted (never retry blindly).
    ``response_excerpt`` is scrubbed of addresses and numbers before it is kept.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        permanent: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
        code: str | None = None,
        message_id: int | None = None,
        response_excerpt: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.permanent = permanent
        self.retry_after = retry_after
        self.status = status
        self.code = code
        self.message_id = message_id
        self.response_excerpt = redact(response_excerpt) if response_excerpt else None

    @property
    def transient(self) -> bool:
        """True when a later retry may succeed."""
        return not self.permanent

    def __str__(self) -> str:
        parts = [f"{self.provider}: {self.message}"]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(f"code {self.code}")
        if self.message_id is not None:
            parts.append(f"message {self.message_id}")
        parts.append("permanent" if self.permanent else "transient")
        if self.retry_after is not None:
            parts.append(f"retry after {self.retry_after:g}s")
        text = ", ".join(parts)
        if self.response_excerpt:
            text += f" — {self.response_excerpt}"
        return text

    def __reduce__(self) -> tuple[object, ...]:
        # Celery pickles exceptions across processes; keyword-only args need help.
        return (_rebuild_provider_error, (self.message, self.__dict__.copy()))


def _rebuild_provider_error(message: str, state: dict[str, object]) -> ProviderError:
    error = ProviderError.__new__(ProviderError)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ConfigurationError(Exception):
    """engage is set up wrongly (missing credentials, unknown provider). Never retried, never swallowed."""


@dataclass(frozen=True)
class OutgoingSms:
    """One SMS to send. ``sender`` is an E.164 number, or None to use the settings' sender."""

    message_id: int
    to: str
    body: str
    sender: str | None = None
    status_callback: str | None = None

    def __repr__(self) -> str:  # keep numbers and bodies out of tracebacks and logs
        return f"OutgoingSms(message_id={self.message_id}, body_chars={len(self.body)})"


@dataclass(frozen=True)
class EmailAttachment:
    """A file sent with an email (e.g. ``visit.ics``, ``text/calendar``); ``data`` is the raw bytes."""

    filename: str
    content_type: str
    data: bytes

    def __repr__(self) -> str:  # the bytes may name the patient's visit: keep them out of logs
        return (
            f"EmailAttachment(filename={self.filename!r}, content_type={self.content_type!r}, bytes={len(self.data)})"
        )


@dataclass(frozen=True)
class OutgoingEmail:
    """One email to send, with both parts; ``headers`` carries e.g. List-Unsubscribe and List-Unsubscribe-Post."""

    message_id: int
    to: str
    from_email: str
    from_name: str
    subject: str
    text: str
    html: str
    headers: dict[str, str] = field(default_factory=dict)
    categories: tuple[str, ...] = ()
    attachments: tuple[EmailAttachment, ...] = ()

    def __repr__(self) -> str:
        return (
            f"OutgoingEmail(message_id={self.message_id}, text_chars={len(self.text)}, "
            f"html_chars={len(self.html)}, attachments={len(self.attachments)})"
        )


@dataclass(frozen=True)
class Accepted:
    """The vendor took the message; ``provider_message_id`` is its id (Twilio ``SM…``, SendGrid ``X-Message-Id``)."""

    provider_message_id: str
    status: str = "sent"


@runtime_checkable
class SmsProvider(Protocol):
    """Sends one SMS. Returns Accepted; raises ProviderError or ConfigurationError."""

    name: ClassVar[str]

    def send_sms(self, msg: OutgoingSms) -> Accepted: ...


@runtime_checkable
class EmailProvider(Protocol):
    """Sends one email. Returns Accepted; raises ProviderError or ConfigurationError."""

    name: ClassVar[str]

    def send_email(self, msg: OutgoingEmail) -> Accepted: ...
