"""Provider delivery reports -> our :class:`MessageStatus`, applied so a message only ever moves forwards.

Twilio and SendGrid words map to ours through two tables. :func:`apply_status`
records the raw report as a :class:`DeliveryEvent` (a repeat of a provider event id is
dropped: webhooks are delivered at least once) and moves the message forwards only::

    scheduled/queued/cancelled/skipped  <  sending/unknown  <  sent  <  delivered/undelivered/failed/bounced

Callbacks arrive out of order ("delivered" before "sent" is common on Twilio), so a
report of an earlier stage than the message is at is kept as history but changes
nothing. Among final states the first one wins. A ``cancelled`` or ``skipped`` row
ranks lowest: a report about it means the provider did get it after all, and the
provider's word is the truth about what the patient received.

A message in ``sending`` or ``unknown`` has no provider id when the process died after
the provider accepted it; the first report about it fills the id in and moves it to
``sent`` or beyond. That, not a blind resend, is how such a crash is reconciled.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.records.models import DeliveryEvent, Message, MessageStatus

log = logging.getLogger(__name__)

#: Twilio ``MessageStatus`` values (status callbacks). Inbound-only words map to None (history only).
TWILIO_STATUSES: dict[str, MessageStatus | None] = {
    "accepted": MessageStatus.SENDING,
    "scheduled": MessageStatus.SENDING,
    "queued": MessageStatus.SENDING,
    "sending": MessageStatus.SENDING,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.DELIVERED,  # WhatsApp/RCS: read implies delivered
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
    "canceled": MessageStatus.FAILED,  # a Twilio-scheduled message cancelled at Twilio never went out
    "receiving": None,
    "received": None,
}

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

_RANK: dict[MessageStatus, int] = {
    MessageStatus.SCHEDULED: 0,
    MessageStatus.QUEUED: 0,
    MessageStatus.CANCELLED: 0,
    MessageStatus.SKIPPED: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.UNKNOWN: 1,
    MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.UNDELIVERED: 3,
    MessageStatus.FAILED: 3,
    MessageStatus.BOUNCED: 3,
}

_FAILURES = (MessageStatus.UNDELIVERED, MessageStatus.FAILED, MessageStatus.BOUNCED)
#: States that prove the provider sent it (``failed`` does not).
_WENT_OUT = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.BOUNCED)


def rank(status: MessageStatus) -> int:
    """How far along a message in ``status`` is (higher is later)."""
    return _RANK[status]


def twilio_status(word: str | None) -> MessageStatus | None:
    """Our status for a Twilio ``MessageStatus``; None for an unknown or inbound-only word."""
    return TWILIO_STATUSES.get((word or "").strip().lower())


def sendgrid_status(event: str | None) -> MessageStatus | None:
    """Our status for a SendGrid event name; None for engagement/list events and unknown names."""
    return SENDGRID_EVENTS.get((event or "").strip().lower())


def apply_status(
    session: Session,
    message: Message,
    status: MessageStatus | None,
    *,
    provider: str,
    event_id: str,
    payload: dict[str, Any],
    error_code: str | None = None,
    provider_message_id: str | None = None,
    error: str | None = None,
) -> bool:
    """Record one provider report about ``message`` and move the message forwards if it is news.

    Returns False, changing nothing, when ``(provider, event_id)`` was recorded before
    (a duplicate delivery); True otherwise. ``status`` None records the event only.
    ``error`` (already free of addresses and numbers) becomes ``last_error`` on a failure.
    The move is one conditional UPDATE, so two callbacks racing for the same message
    cannot move it backwards either. Works inside the caller's transaction.
    """
    event_id = event_id[:200]
    if session.scalar(
        select(DeliveryEvent.id).where(DeliveryEvent.provider == provider, DeliveryEvent.event_id == event_id)
    ) is not None:
        return False
    event = DeliveryEvent(
        message_id=message.id, provider=provider, event_id=event_id,
        status=(status.value if status else str(payload.get("event") or payload.get("MessageStatus") or "other"))[:40],
        payload=payload, received_at=utcnow(),
    )
    try:
        # A savepoint, so losing a race with a concurrent duplicate leaves the caller's transaction usable.
        with session.begin_nested():
            session.add(event)
    except IntegrityError:
        return False

    now = utcnow()
    if provider_message_id:
        # Only fills a missing id: the crash-after-accept case. An id we stored is never overwritten.
        session.execute(
            update(Message)
            .where(Message.id == message.id, Message.provider_message_id.is_(None))
            .values(provider_message_id=provider_message_id[:100], provider=provider, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    if status is not None:
        earlier = [s for s, r in _RANK.items() if r < rank(status)]
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if status is MessageStatus.DELIVERED:
            values["delivered_at"] = now
        if status in _FAILURES:
            values["error_code"] = error_code[:20] if error_code else None
            values["last_error"] = (error or f"{provider}: {status.value}")[:500]
        moved = session.execute(
            update(Message)
            .where(Message.id == message.id, Message.status.in_(earlier))
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if moved and status in _WENT_OUT:
            # Keep the send path's own sent_at; fill it only when the reports are all we have
            # (a reconciled crash, or SendGrid's "delivered" arriving before anything else).
            session.execute(
                update(Message).where(Message.id == message.id, Message.sent_at.is_(None)).values(sent_at=now)
                .execution_options(synchronize_session=False)
            )
        log.info("delivery report: message %s %s -> %s (%s)", message.id, provider, status.value,
                 "applied" if moved else "stale, kept as history")
    session.refresh(message)
    return True
