"""``/healthz`` answers for the beat: 200 while it ticks, 503 once the last tick is older than three ticks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from engage import clock
from engage.delivery import heartbeat
from engage.web.app import create_app

pytestmark = pytest.mark.usefixtures("db_url")


def test_healthz_is_200_right_after_a_tick() -> None:
    heartbeat.record_tick()
    answer = TestClient(create_app()).get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["ok"] is True and answer.json()["beat"]["stale"] is False


def test_healthz_is_503_when_the_last_tick_is_older_than_three_ticks() -> None:
    heartbeat.record_tick(clock.utcnow() - timedelta(seconds=3 * 15 + 5))  # ENGAGE_TICK_SECONDS default 15
    answer = TestClient(create_app()).get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["beat"]["stale"] is True and answer.json()["beat"]["age_seconds"] > 45


def test_healthz_is_503_when_beat_never_ticked() -> None:
    answer = TestClient(create_app()).get("/healthz")
    assert answer.status_code == 503 and answer.json()["beat"]["last_tick_at"] is None


def test_livez_answers_while_the_web_process_runs_even_when_beat_is_down() -> None:
    answer = TestClient(create_app()).get("/livez")
    assert answer.status_code == 200 and answer.json() == {"ok": True}
