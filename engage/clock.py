"""The one place that reads the time.

Everything that needs "now" calls :func:`utcnow`. Tests and ``engage tick --now``
freeze it with :func:`frozen`, so a whole pass runs as if at that instant.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime, timezone

_frozen: ContextVar[datetime | None] = ContextVar("engage_frozen_now", default=None)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (or the frozen time inside :func:`frozen`)."""
    return _frozen.get() or datetime.now(timezone.utc)


@contextlib.contextmanager
def frozen(at: datetime) -> Iterator[datetime]:
    """Make :func:`utcnow` return ``at`` (which must be aware) inside the block."""
    if at.tzinfo is None:
        raise ValueError("frozen() needs an aware datetime")
    token = _frozen.set(at.astimezone(timezone.utc))
    try:
        yield at
    finally:
        _frozen.reset(token)
