"""The beat heartbeat: each tick records its time; a tick older than three tick periods is stale."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engage.config import get_settings
from engage.delivery import heartbeat

pytestmark = pytest.mark.usefixtures("db_url")

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def test_no_tick_ever_is_stale() -> None:
    status = heartbeat.last_tick(T0)
    assert status.last_tick_at is None and status.age_seconds is None
    assert status.stale


def test_recent_tick_is_fresh_and_one_older_than_three_ticks_is_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGAGE_TICK_SECONDS", "10")
    get_settings.cache_clear()
    heartbeat.record_tick(T0, duration_seconds=0.25)

    fresh = heartbeat.last_tick(T0 + timedelta(seconds=30))
    assert fresh.last_tick_at == T0 and fresh.age_seconds == 30 and fresh.duration_seconds == 0.25
    assert not fresh.stale and fresh.stale_after_seconds == 30

    assert heartbeat.last_tick(T0 + timedelta(seconds=31)).stale


def test_each_tick_overwrites_the_last_one() -> None:
    heartbeat.record_tick(T0)
    heartbeat.record_tick(T0 + timedelta(minutes=5))
    assert heartbeat.last_tick(T0 + timedelta(minutes=5)).last_tick_at == T0 + timedelta(minutes=5)


def test_ticking_records_the_start_of_a_tick_that_finished() -> None:
    from engage import clock

    with clock.frozen(T0), heartbeat.ticking():
        pass
    status = heartbeat.last_tick(T0)
    assert status.last_tick_at == T0 and status.duration_seconds is not None and status.duration_seconds >= 0


def test_a_tick_that_raised_records_nothing() -> None:
    with pytest.raises(RuntimeError), heartbeat.ticking():
        raise RuntimeError("database down")
    assert heartbeat.last_tick().last_tick_at is None
