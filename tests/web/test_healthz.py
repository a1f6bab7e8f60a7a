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


def test_healthz_is_503_when_the_last_tick_is_dated_in_the_future() -> None:
    heartbeat.record_tick(clock.utcnow() + timedelta(days=40))  # a simulation's clock, or a wrong system clock
    answer = TestClient(create_app()).get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["beat"]["stale"] is True and answer.json()["beat"]["in_the_future"] is True


def test_healthz_is_503_when_beat_never_ticked() -> None:
    answer = TestClient(create_app()).get("/healthz")
    assert answer.status_code == 503 and answer.json()["beat"]["last_tick_at"] is None


def test_livez_answers_while_the_web_process_runs_even_when_beat_is_down() -> None:
    answer = TestClient(create_app()).get("/livez")
    assert answer.status_code == 200 and answer.json() == {"ok": True}


def test_healthz_is_503_with_its_json_when_the_database_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    from engage.config import get_settings

    monkeypatch.setenv("ENGAGE_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nothing")
    get_settings.cache_clear()
    answer = TestClient(create_app()).get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["ok"] is False and answer.json()["problems"] == ["database unreachable"]


def test_healthz_is_503_while_a_provider_refuses_every_send() -> None:
    heartbeat.record_tick()
    heartbeat.record_tick(name=heartbeat.PROVIDER_OK.format(channel="email"))
    heartbeat.record_tick(name=heartbeat.PROVIDER_FAILING.format(channel="sms"))
    answer = TestClient(create_app()).get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["problems"] == ["sms provider failing"]
    assert answer.json()["providers"]["email"]["failing"] is False
    heartbeat.record_tick(name=heartbeat.PROVIDER_OK.format(channel="sms"))  # it takes messages again
    assert TestClient(create_app()).get("/healthz").status_code == 200
