"""The beat's heartbeat: every tick records when it ran, so a stopped beat is visible.

A quiet outbox and a dead beat look the same from the outbox alone: nothing is
sent. So each tick (the ``dispatch_due`` task beat fires every
``ENGAGE_TICK_SECONDS``) upserts one ``heartbeat`` row, and :func:`last_tick`
tells whether that row is older than :data:`STALE_TICKS` ticks. ``/healthz``,
``engage status`` and the staff Today page read it.

The row is written by whichever worker ran the tick, so "stale" means beat is
down *or* no worker takes the dispatch queue: either way nothing is being sent.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from engage import clock, metrics
from engage.config import get_settings
from engage.db import session_scope
from engage.records.models import Heartbeat

#: The job name of beat's dispatch tick.
BEAT_TICK = "beat_tick"
#: A tick older than this many tick periods counts as missed (one late tick is normal jitter).
STALE_TICKS = 3


@dataclass(frozen=True)
class TickStatus:
    """The last beat tick: when (``None``: never), how long ago, and whether that is too long."""

    last_tick_at: datetime | None
    age_seconds: float | None
    stale: bool
    stale_after_seconds: float
    duration_seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "last_tick_at": self.last_tick_at.isoformat() if self.last_tick_at else None,
            "age_seconds": None if self.age_seconds is None else round(self.age_seconds, 3),
            "stale": self.stale,
            "stale_after_seconds": self.stale_after_seconds,
            "duration_seconds": self.duration_seconds,
        }


def record_tick(at: datetime | None = None, duration_seconds: float | None = None, name: str = BEAT_TICK) -> None:
    """Record that the tick ``name`` ran at ``at`` (default: now), in its own short transaction.

    An upsert (``INSERT … ON CONFLICT DO UPDATE``): any number of workers may
    record at once without a unique-key error.
    """
    at = at or clock.utcnow()
    with session_scope() as session:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(Heartbeat).values(name=name, at=at, duration_seconds=duration_seconds)
        stmt = stmt.on_conflict_do_update(
            index_elements=[Heartbeat.name],
            set_={"at": stmt.excluded.at, "duration_seconds": stmt.excluded.duration_seconds},
        )
        session.execute(stmt)


@contextlib.contextmanager
def ticking(name: str = BEAT_TICK) -> Iterator[None]:
    """Around one tick: when the block finishes without an error, record its start time and duration.

    A tick that raised (database or broker down) records nothing, so the heartbeat goes stale.
    """
    started = clock.utcnow()
    t0 = time.monotonic()
    yield
    elapsed = time.monotonic() - t0
    metrics.TICK_DURATION.observe(elapsed)
    record_tick(started, elapsed, name)


def last_tick(now: datetime | None = None, name: str = BEAT_TICK) -> TickStatus:
    """The last recorded tick and whether it is stale: older than ``STALE_TICKS × ENGAGE_TICK_SECONDS``.

    Never having ticked is stale too (beat has not run against this database).
    """
    now = now or clock.utcnow()
    stale_after = STALE_TICKS * get_settings().tick_seconds
    with session_scope() as session:
        row = session.execute(select(Heartbeat.at, Heartbeat.duration_seconds).where(Heartbeat.name == name)).first()
    if row is None:
        return TickStatus(None, None, True, stale_after)
    age = (now - row.at).total_seconds()
    return TickStatus(row.at, age, age > stale_after, stale_after, row.duration_seconds)
