"""Provider delivery reports -> our :class:`MessageStatus`, applied so a message only ever moves forwards.

Twilio's words map to ours through a table here (SendGrid's: ``engage.delivery.providers.sendgrid``).
:func:`apply_reports` records each raw report as a :class:`DeliveryEvent` (a repeat of a provider event id is
dropped: webhooks are delivered at least once) and moves the message forwards only
(:func:`apply_status` is the same for one report)::

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
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Integer, Table, Text, bindparam, column, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.records.models import DeliveryEvent, Message, MessageStatus
from engage.records.outgoing_webhooks import EventType, emit

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


@dataclass(frozen=True)
class Report:
    """One provider report about one of our messages, already matched to the message."""

    message_id: int
    status: MessageStatus | None  # None: history only (opens, clicks, inbound-only words)
    event_id: str  # the provider's id for this report; a repeat is dropped
    payload: dict[str, Any]
    error_code: str | None = None
    provider_message_id: str | None = None
    error: str | None = None  # already free of addresses and numbers; becomes ``last_error`` on a failure


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
    :func:`apply_reports` for a batch of one; ``message`` is refreshed afterwards.
    """
    report = Report(message.id, status, event_id, payload, error_code, provider_message_id, error)
    new = apply_reports(session, provider, [report])
    session.refresh(message)
    return bool(new)


_COLUMNS = ("status", "provider", "provider_message_id", "sent_at", "delivered_at", "error_code", "last_error")
_CHUNK = 1000  # rows per statement: far below PostgreSQL's 65,535 and SQLite's 32,766 bound parameters


def apply_reports(session: Session, provider: str, reports: Sequence[Report]) -> list[Report]:
    """Record a batch of reports and move each message forwards; returns the reports that were new, in order.

    A few set-based statements whatever the batch size: the messages are locked in id
    order (``SELECT … ORDER BY id FOR UPDATE``), so two batches touching the same
    messages queue behind each other instead of deadlocking; the events go in with
    ``ON CONFLICT DO NOTHING`` (a repeat of ``(provider, event_id)``, within the batch
    or from an earlier one, is dropped); each message's new state is folded from its new
    reports in batch order under the lock and written back in one executemany. Reports
    about messages that do not exist are dropped. Works inside the caller's transaction.
    """
    unique: dict[str, Report] = {}
    for report in reports:
        unique.setdefault(report.event_id[:200], report)
    ids = sorted({r.message_id for r in unique.values()})
    rows: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        locked = select(Message.id, *(getattr(Message, c) for c in _COLUMNS)).where(Message.id.in_(chunk))
        for locked_row in session.execute(locked.order_by(Message.id).with_for_update()):
            rows[locked_row.id] = dict(locked_row._mapping)
    candidates = [(event_id, r) for event_id, r in unique.items() if r.message_id in rows]
    inserted = _insert_events(session, provider, candidates)
    new = [r for event_id, r in candidates if event_id in inserted]

    now = utcnow()
    before = {i: (row["status"], row["sent_at"]) for i, row in rows.items()}
    changed: dict[int, dict[str, Any]] = {}
    for report in new:
        row = rows[report.message_id]
        if _fold(row, report, provider, now):
            changed[report.message_id] = row
    table = cast(Table, Message.__table__)
    for chunk in _chunks(sorted(changed)):
        session.execute(
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values({c: bindparam(c) for c in _COLUMNS} | {"updated_at": bindparam("updated_at")}),
            [{**{c: changed[i][c] for c in _COLUMNS}, "row_id": i, "updated_at": now} for i in chunk],
        )
    # Usually the send path said "sent" already; a reconciled crash learns it here (the same event id either way).
    emit(session, EventType.MESSAGE_SENT, [i for i, row in changed.items() if before[i][1] is None and row["sent_at"]])
    emit(
        session,
        EventType.MESSAGE_FAILED,
        [i for i, row in changed.items() if row["status"] in _FAILURES and before[i][0] not in _FAILURES],
    )
    if new:
        tally = Counter(r.status.value if r.status else "history" for r in new)
        log.info(
            "delivery reports (%s): %d new of %d, %d messages moved (%s)",
            provider,
            len(new),
            len(reports),
            len(changed),
            ", ".join(f"{k} {v}" for k, v in sorted(tally.items())),
        )
    return new


def _fold(row: dict[str, Any], report: Report, provider: str, now: datetime) -> bool:
    """Apply ``report`` to the message's ``row`` (its locked columns) in place; True when anything changed."""
    changed = False
    if report.provider_message_id and row["provider_message_id"] is None:
        # Only fills a missing id: the crash-after-accept case. An id we stored is never overwritten.
        row["provider_message_id"] = report.provider_message_id[:100]
        row["provider"] = provider
        changed = True
    status = report.status
    if status is not None and rank(row["status"]) < rank(status):
        row["status"] = status
        if status is MessageStatus.DELIVERED:
            row["delivered_at"] = now
        if status in _FAILURES:
            row["error_code"] = report.error_code[:20] if report.error_code else None
            row["last_error"] = (report.error or f"{provider}: {status.value}")[:500]
        if status in _WENT_OUT and row["sent_at"] is None:
            # Keep the send path's own sent_at; fill it only when the reports are all we have
            # (a reconciled crash, or SendGrid's "delivered" arriving before anything else).
            row["sent_at"] = now
        changed = True
    return changed


def _insert_events(session: Session, provider: str, reports: list[tuple[str, Report]]) -> set[str]:
    """Insert a DeliveryEvent per report, skipping event ids already stored; returns the event ids inserted."""
    if not reports:
        return set()
    now = utcnow()
    table = cast(Table, DeliveryEvent.__table__)
    columns = {
        "message_id": [r.message_id for _, r in reports],
        "provider": [provider] * len(reports),
        "event_id": [event_id for event_id, _ in reports],
        "status": [
            (r.status.value if r.status else str(r.payload.get("event") or r.payload.get("MessageStatus") or "other"))[
                :40
            ]
            for _, r in reports
        ],
        "payload": [r.payload for _, r in reports],
    }
    if session.get_bind().dialect.name == "postgresql":
        # The whole batch as one JSON parameter that PostgreSQL unpacks into rows: one statement,
        # one bound value, however many events (no per-row parameters to send or escape).
        rows = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
        recordset = func.json_to_recordset(bindparam("rows", rows, type_=JSON))
        source = recordset.table_valued(
            column("message_id", Integer),
            column("provider", Text),
            column("event_id", Text),
            column("status", Text),
            column("payload", table.c.payload.type),
        ).render_derived(with_types=True)
        stmt = (
            pg_insert(table)
            .from_select(
                [*columns, "received_at"],
                select(*source.c, literal(now, table.c.received_at.type)),
            )
            .on_conflict_do_nothing(index_elements=["provider", "event_id"])
            .returning(table.c.event_id)
        )
        return set(session.connection().execute(stmt).scalars())
    stmt = (
        sqlite_insert(table).on_conflict_do_nothing(index_elements=["provider", "event_id"]).returning(table.c.event_id)
    )
    values = [
        dict(zip(columns, row, strict=True)) | {"received_at": now} for row in zip(*columns.values(), strict=True)
    ]
    return set(session.connection().execute(stmt, values).scalars())


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]
