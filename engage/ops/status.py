"""``engage status``: is engage sending? The backlog, the last beat tick, the workers, recent trouble.

Only counts, ids, times and host names: nothing here names a patient.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engage import clock
from engage.config import get_settings
from engage.db import session_scope
from engage.delivery import spool
from engage.delivery.heartbeat import STALE_TICKS, ProviderState, TickStatus, last_tick, provider_states
from engage.records.models import Channel, Message, MessageStatus
from engage.records.outgoing_webhooks import EventStatus, WebhookEvent

log = logging.getLogger(__name__)

#: How long ``engage status`` waits for workers to answer a ping.
PING_TIMEOUT_SECONDS = 1.0
#: The window for "recent" failed and unknown messages.
RECENT = timedelta(hours=24)
#: The window for outgoing webhook events given up on: retries alone take about a day.
RECENT_WEBHOOKS = timedelta(days=7)
CHANNELS = tuple(c.value for c in Channel)


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
    """Messages due and not yet handed to a worker: ``scheduled`` and due, plus ``queued``.

    ``retrying``: due rows a provider error put back until ``next_attempt_at`` (not in ``total``:
    nothing is to be done with them before then, but many of them mean the provider is refusing).
    """

    due: int
    queued: int
    oldest_due_at: datetime | None
    oldest_due_id: int | None
    oldest_age_seconds: float | None
    retrying: int = 0

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
    retrying = (
        session.scalar(
            select(func.count())
            .select_from(Message)
            .where(
                Message.status == MessageStatus.SCHEDULED,
                Message.due_at <= now,
                Message.next_attempt_at > now,
                Message.error_code.is_not(None),
            )
        )
        or 0
    )
    oldest = session.execute(
        select(Message.id, Message.due_at).where(waiting).order_by(Message.due_at, Message.id).limit(1)
    ).first()
    if oldest is None:
        return Backlog(due, queued, None, None, None, retrying)
    age = max(0.0, (now - oldest.due_at).total_seconds())
    return Backlog(due, queued, oldest.due_at, oldest.id, age, retrying)


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
    """What ``engage status`` reports. With the database unreachable only ``now``, ``workers`` and
    ``held`` are known (the rest are empty) and ``healthy`` is False."""

    now: datetime
    backlog: Backlog
    tick: TickStatus
    workers: list[str] | None
    failed_24h: int
    unknown_24h: int
    webhooks: Webhooks
    providers: list[ProviderState] = field(default_factory=list)
    database_reachable: bool = True
    held: int = 0  # inbound SMS, send results and callbacks held in Redis until the database takes them

    @property
    def problems(self) -> list[str]:
        """Why engage is not healthy, one short phrase each (empty when it is)."""
        found = []
        if not self.database_reachable:
            found.append("database unreachable")
        elif self.tick.stale:
            found.append("beat tick stale")
        if self.workers is None:
            found.append("broker unreachable")
        elif not self.workers:
            found.append("no worker answered")
        found += [f"{p.channel} provider failing" for p in self.providers if p.failing]
        return found

    @property
    def healthy(self) -> bool:
        """The database answers, beat ticks, at least one worker answered and no provider refuses every send."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        b = self.backlog
        return {
            "now": self.now.isoformat(),
            "healthy": self.healthy,
            "problems": self.problems,
            "database_reachable": self.database_reachable,
            "held_in_redis": self.held,
            "providers": {p.channel: p.as_dict() for p in self.providers},
            "backlog": {
                "total": b.total,
                "due": b.due,
                "queued": b.queued,
                "retrying": b.retrying,
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
    """Everything ``engage status`` prints, read now. An unreachable database is reported, not raised."""
    now = now or clock.utcnow()
    workers = ping_workers(ping_timeout)
    held = spool.pending()
    try:
        with session_scope() as session:
            waiting = backlog(session, now)
            trouble = recent_trouble(session, now)
            owed = webhooks(session, now)
        tick = last_tick(now)
        providers = provider_states(CHANNELS, now)
    except spool.DATABASE_DOWN as exc:
        log.error("status: database unreachable (%s)", type(exc).__name__)
        return _without_database(now, workers, held)
    return Status(
        now=now,
        backlog=waiting,
        tick=tick,
        workers=workers,
        failed_24h=trouble["failed"],
        unknown_24h=trouble["unknown"],
        webhooks=owed,
        providers=providers,
        held=held,
    )


def _without_database(now: datetime, workers: list[str] | None, held: int) -> Status:
    stale_after = STALE_TICKS * get_settings().tick_seconds
    return Status(
        now=now,
        backlog=Backlog(0, 0, None, None, None),
        tick=TickStatus(None, None, True, stale_after),
        workers=workers,
        failed_24h=0,
        unknown_24h=0,
        webhooks=Webhooks(0, None, 0),
        database_reachable=False,
        held=held,
    )


def health(now: datetime | None = None) -> tuple[bool, dict[str, Any]]:
    """``/healthz``: (ok, body). Not ok when the database does not answer, the beat's last tick is stale or a
    provider refuses every send; the body says which. Never raises for a database outage."""
    now = now or clock.utcnow()
    held = spool.pending()
    try:
        tick = last_tick(now)
        providers = provider_states(CHANNELS, now)
    except spool.DATABASE_DOWN as exc:
        log.error("healthz: database unreachable (%s)", type(exc).__name__)
        return False, {
            "ok": False,
            "problems": ["database unreachable"],
            "database_reachable": False,
            "held_in_redis": held,
        }
    problems = (["beat tick stale"] if tick.stale else []) + [
        f"{p.channel} provider failing" for p in providers if p.failing
    ]
    return not problems, {
        "ok": not problems,
        "problems": problems,
        "beat": tick.as_dict(),
        "providers": {p.channel: p.as_dict() for p in providers},
        "database_reachable": True,
        "held_in_redis": held,
    }
