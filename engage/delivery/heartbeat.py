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
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from engage import clock, metrics
from engage.config import get_settings
from engage.db import session_scope
from engage.records.models import Heartbeat

log = logging.getLogger(__name__)

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

    @property
    def in_the_future(self) -> bool:
        """The tick is dated ahead of now by more than a tick period: a wrong clock, not a live beat."""
        return self.age_seconds is not None and self.age_seconds < -self.stale_after_seconds / STALE_TICKS

    def as_dict(self) -> dict[str, Any]:
        return {
            "last_tick_at": self.last_tick_at.isoformat() if self.last_tick_at else None,
            "age_seconds": None if self.age_seconds is None else round(self.age_seconds, 3),
            "stale": self.stale,
            "in_the_future": self.in_the_future,
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


def last_tick(now: datetime | None = None, name: str = BEAT_TICK, *, session: Session | None = None) -> TickStatus:
    """The last recorded tick and whether it is stale: older than ``STALE_TICKS × ENGAGE_TICK_SECONDS``.

    Never having ticked is stale too (beat has not run against this database), and so is a tick dated more
    than one tick period ahead of now: a clock that ran ahead (a simulation, a wrong system clock) says
    nothing about whether beat ticks now. ``session``: read in the caller's (a page reading more), else in
    a session of its own.
    """
    now = now or clock.utcnow()
    stale_after = STALE_TICKS * get_settings().tick_seconds
    with contextlib.nullcontext(session) if session is not None else session_scope() as reading:
        row = reading.execute(select(Heartbeat.at, Heartbeat.duration_seconds).where(Heartbeat.name == name)).first()
    if row is None:
        return TickStatus(None, None, True, stale_after)
    age = (now - row.at).total_seconds()
    ahead = age < -stale_after / STALE_TICKS
    return TickStatus(row.at, age, age > stale_after or ahead, stale_after, row.duration_seconds)


# --- providers -------------------------------------------------------------------------------------

#: Heartbeat names: the last batch of a channel in which the provider accepted something, and the last in
#: which it accepted nothing and refused (transient errors, timeouts) at least one message.
PROVIDER_OK = "provider_ok:{channel}"
PROVIDER_FAILING = "provider_failing:{channel}"

_written: dict[tuple[int, str], tuple[bool, float]] = {}
_written_lock = threading.Lock()


def record_provider(channel: str, *, accepted: int, refused: int) -> None:
    """After a send batch: note whether the channel's provider took messages or refused them all.

    At most one write per channel and process every tick while the state stays the same (a change is
    written at once), so a busy worker adds no statement per message. A database error here is logged
    and dropped (the sends are done).
    """
    if accepted == 0 and refused == 0:
        return
    ok = accepted > 0
    key = (os.getpid(), channel)
    now = time.monotonic()
    with _written_lock:
        last = _written.get(key)
        if last is not None and last[0] == ok and now - last[1] < get_settings().tick_seconds:
            return
        _written[key] = (ok, now)
    try:
        record_tick(name=(PROVIDER_OK if ok else PROVIDER_FAILING).format(channel=channel))
    except SQLAlchemyError as exc:
        log.warning("could not record the %s provider's state (%s)", channel, type(exc).__name__)


@dataclass(frozen=True)
class ProviderState:
    """A channel's provider as the workers last saw it: failing when its last all-refused batch is newer than
    its last accepted one and recent (within :data:`STALE_TICKS` ticks)."""

    channel: str
    failing: bool
    last_ok_at: datetime | None
    last_failing_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "failing": self.failing,
            "last_ok_at": self.last_ok_at.isoformat() if self.last_ok_at else None,
            "last_failing_at": self.last_failing_at.isoformat() if self.last_failing_at else None,
        }


def provider_states(channels: tuple[str, ...], now: datetime | None = None) -> list[ProviderState]:
    """The state of each channel's provider (one query)."""
    now = now or clock.utcnow()
    names = {PROVIDER_OK.format(channel=c) for c in channels} | {PROVIDER_FAILING.format(channel=c) for c in channels}
    with session_scope() as session:
        seen = dict(session.execute(select(Heartbeat.name, Heartbeat.at).where(Heartbeat.name.in_(names))).all())
    window = STALE_TICKS * get_settings().tick_seconds
    states = []
    for channel in channels:
        ok_at = seen.get(PROVIDER_OK.format(channel=channel))
        bad_at = seen.get(PROVIDER_FAILING.format(channel=channel))
        failing = bad_at is not None and (ok_at is None or bad_at > ok_at) and (now - bad_at).total_seconds() <= window
        states.append(ProviderState(channel, failing, ok_at, bad_at))
    return states
