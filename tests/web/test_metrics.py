"""``/metrics``: Prometheus text behind a bearer token, outbox gauges from the database, counters, no PHI."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from engage import clock, metrics
from engage.config import get_settings
from engage.delivery import heartbeat
from engage.records.models import Channel, MessageStatus
from engage.web.app import create_app
from tests.fixtures.webhooks.support import PATIENT_PHONE, add_message, make_world

pytestmark = pytest.mark.usefixtures("db_url")

TOKEN = "scrape-token-0123456789"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("ENGAGE_METRICS_TOKEN", TOKEN)
    get_settings.cache_clear()
    return TestClient(create_app())


def scrape(http: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_are_off_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TestClient(create_app()).get("/metrics").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN])
def test_metrics_refuse_a_scrape_without_the_bearer_token(http: TestClient, header: str | None) -> None:
    answer = http.get("/metrics", headers={"Authorization": header} if header else {})
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert "engage_" not in answer.text


def test_outbox_gauges_count_messages_by_status_and_channel_and_the_due_backlog(http: TestClient) -> None:
    world = make_world()
    now = clock.utcnow()
    for _ in range(3):
        add_message(world, status=MessageStatus.SENT)
    add_message(world, channel=Channel.EMAIL, template="what-to-expect", status=MessageStatus.FAILED)
    add_message(world, status=MessageStatus.SCHEDULED, due_at=now - timedelta(minutes=10))
    add_message(world, status=MessageStatus.SCHEDULED, due_at=now + timedelta(days=1))  # not due
    heartbeat.record_tick(now - timedelta(seconds=20))

    samples = scrape(http)
    assert value(samples, "engage_messages", status="sent", channel="sms") == 3
    assert value(samples, "engage_messages", status="failed", channel="email") == 1
    assert value(samples, "engage_messages", status="scheduled", channel="sms") == 2
    assert value(samples, "engage_messages", status="unknown", channel="email") == 0  # present, as zero
    assert ("engage_messages", frozenset({"status": "unknown", "channel": "email"}.items())) in samples
    assert value(samples, "engage_due_backlog") == 1
    assert 600 <= value(samples, "engage_oldest_due_age_seconds") < 700
    assert 20 <= value(samples, "engage_last_tick_age_seconds") < 90
    assert value(samples, "engage_beat_stale") == 0


def test_webhook_requests_are_counted_by_result(http: TestClient) -> None:
    def forbidden() -> float:
        return value(scrape(http), "engage_webhook_requests_total", provider="twilio", result="forbidden")

    before = forbidden()
    answer = http.post("/webhooks/twilio/status", data={"MessageSid": "SM1", "MessageStatus": "delivered"})
    assert answer.status_code == 403  # unsigned
    assert forbidden() == before + 1


def test_logins_counter_has_a_helper_others_call(http: TestClient) -> None:
    before = value(scrape(http), "engage_logins_total", result="failed")
    metrics.record_login("failed")
    assert value(scrape(http), "engage_logins_total", result="failed") == before + 1


def test_metrics_carry_no_patient_data(http: TestClient) -> None:
    world = make_world(first_name="Zebulon")
    add_message(world, status=MessageStatus.SENT)
    text = http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    for secret in ("Zebulon", "Ruiz", PATIENT_PHONE, PATIENT_PHONE.lstrip("+"), "ana.ruiz@example.org", TOKEN):
        assert secret not in text


def test_multiprocess_mode_adds_up_what_every_process_counted(
    http: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two short-lived processes (as Celery pool processes would) count; the web's scrape shows the sum."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    script = "from engage import metrics; metrics.record_provider_error('twilio', 21610); metrics.record_login('ok')"
    for _ in range(2):
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    assert list(directory.glob("counter_*.db"))

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    samples = scrape(http)
    assert value(samples, "engage_provider_errors_total", provider="twilio", code="21610") == 2
    assert value(samples, "engage_logins_total", result="ok") == 2
    assert value(samples, "engage_messages", status="sent", channel="sms") == 0  # the database gauges still come
