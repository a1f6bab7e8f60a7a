"""Data retention: past a window, drop what a message said and keep that it happened.

:func:`purge` empties, for rows older than the window, everything that can hold
a patient's words or addresses beyond the patient record itself:

- ``message.context`` (the step's template variables) of messages that are
  finished (not ``scheduled``, ``queued`` or ``sending``) and were due before the cutoff;
- ``delivery_event.payload`` (the provider's raw callback: recipient, IP, user agent);
- ``inbound_message.body`` (the patient's reply text);
- the ``outbox`` provider's files (rendered messages) last written before the cutoff;
- outgoing webhook events that occurred before the cutoff and are settled (delivered, failed or dropped):
  rows, not contents, since they hold only ids and scores; the table would otherwise only grow.

Ids, statuses, times, error codes, outcomes (scores) and the audit trail stay.
Message bodies themselves are rendered at send time and never stored in the
database. Each run is one transaction per table, touches only rows not yet
emptied (so a weekly run is cheap and its counts mean "newly purged"), and
records one audit event with the counts.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Delete, String, Update, cast, delete, update
from sqlalchemy.orm import Session

from engage import clock
from engage.config import get_settings
from engage.db import session_scope
from engage.records.audit import AuditAction, audit
from engage.records.models import DeliveryEvent, InboundMessage, Message, MessageStatus
from engage.records.outgoing_webhooks import EventStatus, WebhookEvent

log = logging.getLogger(__name__)

#: Statuses of messages still on their way: their context is still needed to render them.
IN_FLIGHT = (MessageStatus.SCHEDULED, MessageStatus.QUEUED, MessageStatus.SENDING)
#: The shortest window accepted: a typo like ``--older-than 1d`` must not wipe yesterday's replies.
MIN_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class PurgeResult:
    cutoff: datetime
    messages: int
    delivery_events: int
    inbound_messages: int
    outbox_files: int
    webhook_events: int

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cutoff": self.cutoff.isoformat()}


def purge(older_than: timedelta, *, now: datetime | None = None, actor: str) -> PurgeResult:
    """Empty the contexts, payloads, reply texts and outbox files older than ``older_than``; return the counts.

    Raises ValueError for a window shorter than :data:`MIN_WINDOW`.
    """
    if older_than < MIN_WINDOW:
        raise ValueError(f"the retention window must be at least {MIN_WINDOW.days} days, not {older_than}")
    cutoff = (now or clock.utcnow()) - older_than
    with session_scope() as session:
        messages = _changed(
            session,
            update(Message)
            .where(Message.due_at < cutoff, Message.status.not_in(IN_FLIGHT), cast(Message.context, String) != "{}")
            .values(context={}),
        )
        events = _changed(
            session,
            update(DeliveryEvent)
            .where(DeliveryEvent.received_at < cutoff, cast(DeliveryEvent.payload, String) != "{}")
            .values(payload={}),
        )
        inbound = _changed(
            session,
            update(InboundMessage)
            .where(InboundMessage.received_at < cutoff, InboundMessage.body != "")
            .values(body=""),
        )
        hooks = _changed(
            session,
            delete(WebhookEvent).where(WebhookEvent.occurred_at < cutoff, WebhookEvent.status != EventStatus.PENDING),
        )
        files = _purge_outbox(Path(get_settings().outbox_dir), cutoff)
        result = PurgeResult(cutoff, messages, events, inbound, files, hooks)
        audit(
            session,
            clinic_id=None,
            actor=actor,
            action=AuditAction.PURGE,
            subject_type="retention",
            subject_id=None,
            **{k: v for k, v in result.as_dict().items()},
        )
    log.info(
        "purge before %s: %d message contexts, %d delivery payloads, %d reply texts, %d outbox files, "
        "%d webhook events",
        cutoff.isoformat(),
        messages,
        events,
        inbound,
        files,
        hooks,
    )
    return result


def _changed(session: Session, statement: Update | Delete) -> int:
    """Run a set-based UPDATE or DELETE; how many rows it touched."""
    result = session.execute(statement.execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]


def _purge_outbox(directory: Path, cutoff: datetime) -> int:
    """Delete the outbox provider's message files last modified before ``cutoff``."""
    if not directory.is_dir():
        return 0
    removed = 0
    for path in directory.iterdir():
        ours = path.is_file() and path.suffix in (".json", ".eml") and path.name.startswith(("sms-", "email-"))
        if ours and datetime.fromtimestamp(path.stat().st_mtime, timezone.utc) < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
