"""Claim due rows and repair stale ones: the beat tick's half of dispatch.

The database is the schedule and every state change is a conditional UPDATE, so
any number of beats and ticks can run at once. :func:`claim_due` moves due
``scheduled`` rows to ``queued`` in one transaction (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers) and returns their ids.
:func:`reap_stale` finds rows a dead worker left in ``sending``: without
``handed_at`` the provider never saw them (back to ``queued``); with it the
provider may have them (``unknown``, never re-sent blindly).

Logs carry message ids and counts only.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, TypedDict

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from engage import clock
from engage.config import get_settings
from engage.db import session_scope
from engage.records.models import Channel, Message, MessageStatus
from engage.records.outgoing_webhooks import EventType, emit

log = logging.getLogger(__name__)

UNKNOWN_REASON = "no answer from provider; check before resending"
REQUEUED_REASON = "requeued: the worker stopped before calling the provider"


class ReapResult(TypedDict):
    requeued: int  # stale ``queued`` rows, and ``sending`` rows never handed over, whose ids the caller enqueues
    unknown: int  # stale ``sending`` rows handed to the provider without an answer: flagged ``unknown``
    failed: int  # stale ``sending`` rows never handed over but out of attempts: ``failed``
    ids: list[int]  # the requeued ids


def _take(session: Session, candidates: Select[Any], guard: Any, values: dict[str, Any]) -> list[int]:
    """UPDATE the rows ``candidates`` selects (locked, skipping rows others hold) and return their ids.

    One statement: ``WITH picked AS MATERIALIZED (SELECT id … LIMIT n FOR UPDATE SKIP
    LOCKED) UPDATE message SET … FROM picked WHERE message.id = picked.id AND <guard>
    RETURNING id``. MATERIALIZED runs the locking subquery exactly once: written as
    ``id IN (SELECT …)`` PostgreSQL may plan it as a semi-join that re-runs the subquery
    per row when the table's statistics are stale, and the LIMIT stops limiting (one tick
    took 395 of 400 rows with a batch of 5). SQLite ignores the locking clause; its
    ``BEGIN IMMEDIATE`` already makes the statement exclusive. ``guard`` repeats the status
    condition so a row changed after the subquery read it is not taken.
    """
    picked = candidates.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
    stmt = (
        update(Message)
        .where(Message.id == picked.c.id, guard)
        .values(**values)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(session.scalars(stmt).all())


def claim_due(limit: int | None = None, *, now: datetime | None = None, channel: Channel | None = None) -> list[int]:
    """Claim up to ``limit`` (default ``settings.claim_batch``) due ``scheduled`` rows; return their ids.

    ``channel``: only that channel's rows (the dispatcher claims SMS and email apart, for their own queues).

    Due: ``due_at <= now`` and no ``next_attempt_at`` in the future. Oldest
    first. The rows become ``queued`` (``queued_at = now``) in one transaction;
    two concurrent claimers never get the same id. The ``(status, due_at)``
    index keeps this cheap however many future rows there are.
    """
    now = now or clock.utcnow()
    limit = limit or get_settings().claim_batch
    candidates = (
        select(Message.id)
        .where(
            Message.status == MessageStatus.SCHEDULED,
            Message.due_at <= now,
            (Message.next_attempt_at.is_(None)) | (Message.next_attempt_at <= now),
            *([Message.channel == channel] if channel is not None else []),
        )
        .order_by(Message.due_at)
        .limit(limit)
    )
    with session_scope() as session:
        ids = _take(
            session,
            candidates,
            Message.status == MessageStatus.SCHEDULED,
            {"status": MessageStatus.QUEUED, "queued_at": now, "updated_at": now},
        )
    if ids:
        log.info("claimed %d due messages (%d..%d)", len(ids), ids[0], ids[-1])
    return ids


def reap_stale(*, now: datetime | None = None) -> ReapResult:
    """Find rows a crashed worker or a lost broker message left behind.

    ``queued`` rows older than ``stale_queued_seconds`` get a fresh ``queued_at``.
    ``sending`` rows older than ``stale_sending_seconds``:

    - without ``handed_at`` (the worker died before the provider call, so the
      provider never saw them) go back to ``queued``, or to ``failed`` when out
      of attempts (a message that kills its worker must not loop forever);
    - with ``handed_at`` and no provider id become ``unknown``: the provider
      may have the message, so only its status callback or a person may
      decide; they are never re-sent.

    The ids of requeued rows are returned for the caller to enqueue again
    (``send_one`` is idempotent, so a duplicate is harmless).
    """
    settings = get_settings()
    now = now or clock.utcnow()
    queued_cutoff = now - timedelta(seconds=settings.stale_queued_seconds)
    stale_sending = (Message.status == MessageStatus.SENDING) & (
        Message.sending_at < now - timedelta(seconds=settings.stale_sending_seconds)
    )
    never_handed = (Message.status == MessageStatus.SENDING) & Message.handed_at.is_(None)
    handed = (Message.status == MessageStatus.SENDING) & Message.handed_at.is_not(None)
    with session_scope() as session:
        ids = _take(
            session,
            select(Message.id)
            .where(Message.status == MessageStatus.QUEUED, Message.queued_at < queued_cutoff)
            .order_by(Message.queued_at),
            Message.status == MessageStatus.QUEUED,
            {"queued_at": now, "updated_at": now},
        )
    with session_scope() as session:
        failed = _take(
            session,
            select(Message.id).where(stale_sending, never_handed, Message.attempts >= settings.max_attempts),
            never_handed,
            {
                "status": MessageStatus.FAILED,
                "next_attempt_at": None,
                "error_code": "internal",
                "updated_at": now,
                "status_reason": "gave up: the worker stopped before calling the provider on every attempt",
            },
        )
        emit(session, EventType.MESSAGE_FAILED, failed)
        unsent = _take(
            session,
            select(Message.id).where(stale_sending, never_handed).order_by(Message.sending_at),
            never_handed,
            {
                "status": MessageStatus.QUEUED,
                "status_reason": REQUEUED_REASON,
                "queued_at": now,
                "sending_at": None,
                "updated_at": now,
            },
        )
    with session_scope() as session:
        unknown = _take(
            session,
            select(Message.id).where(stale_sending, handed, Message.provider_message_id.is_(None)),
            handed,
            {"status": MessageStatus.UNKNOWN, "status_reason": UNKNOWN_REASON, "updated_at": now},
        )
    if ids or unsent or unknown or failed:
        log.warning(
            "reaper: %d queued and %d never-handed sending messages re-enqueued, %d failed (out of "
            "attempts), %d handed-over sending messages flagged unknown %s",
            len(ids),
            len(unsent),
            len(failed),
            len(unknown),
            unknown[:20],
        )
    requeued = sorted(ids + unsent)
    return {"requeued": len(requeued), "unknown": len(unknown), "failed": len(failed), "ids": requeued}
