"""``engage status``: is engage sending? The backlog, the last beat tick, the workers, recent trouble.

Only counts, ids, times and host names: nothing here names a patient.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engage import clock
from engage.config import get_settings
from engage.db import session_scope
from engage.delivery.heartbeat import TickStatus, last_tick
from engage.records.models import Message, MessageStatus
from engage.records.outgoing_webhooks import EventStatus, WebhookEvent

log = logging.getLogger(__name__)

#: How long ``engage status`` waits for workers to answer a ping.
PING_TIMEOUT_SECONDS = 1.0
#: The window for "recent" failed and unknown messages.
RECENT = timedelta(hours=24)
#: The window for outgoing webhook events given up on: retries alone take about a day.
RECENT_WEBHOOKS = timedelta(days=7)


@dataclass(frozen=True)
class Webhooks:
    """Outgoing webhook events still owed (and how long the oldest has waited), and recent ones given up on."""

    pending: int
    oldest_pending_age_seconds: float | None
    failed_7d: int

    def as_dict(self) -> dict[str, Any]:
        age = self.oldest_pending_age_seconds
        return {
            "pending": self.pending,
            "oldest_pending_age_seconds": None if age is None else round(age, 3),
            "failed_7d": self.failed_7d,
        }


def webhooks(session: Session, now: datetime) -> Webhooks:
    """Counts of :class:`WebhookEvent` rows: pending, the oldest pending one's age, failed in the last 7 days."""
    pending, oldest = session.execute(
        select(func.count(), func.min(WebhookEvent.occurred_at)).where(WebhookEvent.status == EventStatus.PENDING)
    ).one()
    failed = (
        session.scalar(
            select(func.count())
            .select_from(WebhookEvent)
            .where(WebhookEvent.status == EventStatus.FAILED, WebhookEvent.occurred_at >= now - RECENT_WEBHOOKS)
        )
        or 0
    )
    if oldest is not None and oldest.tzinfo is None:  # SQLite's min() comes back as naive UTC
        oldest = oldest.replace(tzinfo=timezone.utc)
    age = None if oldest is None else max(0.0, (now - oldest).total_seconds())
    return Webhooks(pending or 0, age, failed)


@dataclass(frozen=True)
class Backlog:
    """Messages due and not yet handed to a worker: ``scheduled`` and due, plus ``queued``."""

    due: int
    queued: int
    oldest_due_at: datetime | None
    oldest_due_id: int | None
    oldest_age_seconds: float | None

    @property
    def total(self) -> int:
        return self.due + self.queued


def due_condition(now: datetime) -> Any:
    """The claim's own definition of "due" (``engage.delivery.claim.claim_due``), as a WHERE clause."""
    return (
        (Message.status == MessageStatus.SCHEDULED)
        & (Message.due_at <= now)
        & (Message.next_attempt_at.is_(None) | (Message.next_attempt_at <= now))
    )


def backlog(session: Session, now: datetime) -> Backlog:
    """Count the due and queued rows and find the oldest of them (by ``due_at``); two indexed queries."""
    waiting = due_condition(now) | (Message.status == MessageStatus.QUEUED)
    due = session.scalar(select(func.count()).select_from(Message).where(due_condition(now))) or 0
    queued = (
        session.scalar(select(func.count()).select_from(Message).where(Message.status == MessageStatus.QUEUED)) or 0
    )
    oldest = session.execute(
        select(Message.id, Message.due_at).where(waiting).order_by(Message.due_at, Message.id).limit(1)
    ).first()
    if oldest is None:
        return Backlog(due, queued, None, None, None)
    return Backlog(due, queued, oldest.due_at, oldest.id, max(0.0, (now - oldest.due_at).total_seconds()))


def recent_trouble(session: Session, now: datetime) -> dict[str, int]:
    """Messages that became ``failed`` or ``unknown`` in the last 24 hours (by ``updated_at``)."""
    rows = session.execute(
        select(Message.status, func.count())
        .where(Message.status.in_([MessageStatus.FAILED, MessageStatus.UNKNOWN]), Message.updated_at >= now - RECENT)
        .group_by(Message.status)
    ).all()
    counts = {"failed": 0, "unknown": 0}
    counts.update({MessageStatus(status).value: n for status, n in rows})
    return counts


def ping_workers(timeout: float = PING_TIMEOUT_SECONDS) -> list[str] | None:
    """Host names of the Celery workers that answered a ping within ``timeout``; ``None`` if the broker is down.

    A bare Celery app on ``ENGAGE_BROKER_URL`` is enough (a ping is a broadcast
    on the broker's control exchange), so this needs neither the task modules nor
    a worker in this process.
    """
    from celery import Celery

    app = Celery("engage-status", broker=get_settings().broker_url, set_as_current=False)
    app.conf.update(broker_connection_retry=False, broker_connection_timeout=timeout, broker_connection_max_retries=0)
    try:
        replies = app.control.ping(timeout=timeout)
    except Exception as exc:  # any kombu/redis connection error: the answer is "no broker"
        log.warning("status: broker unreachable for the worker ping (%s)", type(exc).__name__)
        return None
    finally:
        app.close()
    return sorted(host for reply in replies for host in reply)


@dataclass(frozen=True)
class Status:
    now: datetime
    backlog: Backlog
    tick: TickStatus
    workers: list[str] | None
    failed_24h: int
    unknown_24h: int
    webhooks: Webhooks

    @property
    def healthy(self) -> bool:
        """Beat ticks and at least one worker answered."""
        return not self.tick.stale and bool(self.workers)

    def as_dict(self) -> dict[str, Any]:
        b = self.backlog
        return {
            "now": self.now.isoformat(),
            "healthy": self.healthy,
            "backlog": {
                "total": b.total,
                "due": b.due,
                "queued": b.queued,
                "oldest_due_at": b.oldest_due_at.isoformat() if b.oldest_due_at else None,
                "oldest_due_id": b.oldest_due_id,
                "oldest_age_seconds": None if b.oldest_age_seconds is None else round(b.oldest_age_seconds, 3),
            },
            "last_tick": self.tick.as_dict(),
            "workers": self.workers,
            "broker_reachable": self.workers is not None,
            "failed_24h": self.failed_24h,
            "unknown_24h": self.unknown_24h,
            "webhooks": self.webhooks.as_dict(),
        }


def collect(ping_timeout: float = PING_TIMEOUT_SECONDS, now: datetime | None = None) -> Status:
    """Everything ``engage status`` prints, read now."""
    now = now or clock.utcnow()
    with session_scope() as session:
        waiting = backlog(session, now)
        trouble = recent_trouble(session, now)
        owed = webhooks(session, now)
    return Status(
        now=now,
        backlog=waiting,
        tick=last_tick(now),
        workers=ping_workers(ping_timeout),
        failed_24h=trouble["failed"],
        unknown_24h=trouble["unknown"],
        webhooks=owed,
    )
