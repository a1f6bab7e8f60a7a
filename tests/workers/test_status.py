"""``engage status`` sees a running worker: it answers the ping, and its ticks keep the heartbeat fresh."""

from __future__ import annotations

from typing import Any

from engage.delivery import heartbeat
from engage.ops import status as ops_status


def test_a_running_worker_answers_the_status_ping(worker: Any) -> None:
    assert worker.hostname in ops_status.ping_workers(timeout=2.0)


def test_each_dispatch_tick_run_by_a_worker_records_the_heartbeat(worker: Any) -> None:
    from workers.tasks import dispatch_due

    assert heartbeat.last_tick().stale
    assert dispatch_due.delay().get(timeout=30, interval=0.01) == 0
    tick = heartbeat.last_tick()
    assert not tick.stale and tick.duration_seconds is not None
    assert ops_status.collect(ping_timeout=2.0).healthy
