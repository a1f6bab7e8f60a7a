"""``engage status``: backlog, oldest due message, last tick, workers that answer, recent failures."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from engage import clock
from engage.db import session_scope
from engage.delivery import heartbeat
from engage.ops import status as ops_status
from engage.records.models import Message, MessageStatus
from tests.cli import engage
from tests.fixtures.webhooks.support import add_message, make_world

pytestmark = pytest.mark.usefixtures("db_url")


def test_status_json_counts_the_backlog_the_oldest_due_message_and_recent_failures() -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    world = make_world()
    oldest = add_message(world, status=MessageStatus.SCHEDULED, due_at=now - timedelta(minutes=7))
    add_message(world, status=MessageStatus.SCHEDULED, due_at=now - timedelta(minutes=1))
    add_message(world, status=MessageStatus.SCHEDULED, due_at=now + timedelta(hours=1))  # not due yet
    add_message(world, status=MessageStatus.QUEUED, due_at=now - timedelta(minutes=2))
    failed = add_message(world, status=MessageStatus.FAILED)
    unknown = add_message(world, status=MessageStatus.UNKNOWN)
    old_failure = add_message(world, status=MessageStatus.FAILED)
    with session_scope() as session:  # updated_at says when a row last changed: two in the window, one before it
        for message_id, age in (
            (failed, timedelta(hours=1)),
            (unknown, timedelta(hours=2)),
            (old_failure, timedelta(hours=30)),
        ):
            session.execute(update(Message).where(Message.id == message_id).values(updated_at=now - age))
    heartbeat.record_tick(now - timedelta(seconds=5))

    result = engage("status", "--json", "--ping-timeout", "0.5")
    assert result.code == 1, result.stderr  # unhealthy: no worker answers
    data = json.loads(result.stdout)
    assert data["backlog"] == {
        "total": 3,
        "due": 2,
        "queued": 1,
        "retrying": 0,
        "oldest_due_at": (now - timedelta(minutes=7)).isoformat(),
        "oldest_due_id": oldest,
        "oldest_age_seconds": pytest.approx(420, abs=60),
    }
    assert data["failed_24h"] == 1 and data["unknown_24h"] == 1
    assert data["last_tick"]["stale"] is False
    assert data["last_tick"]["last_tick_at"] == (now - timedelta(seconds=5)).isoformat()
    # The default memory:// broker lives inside one process: no worker there answers.
    assert data["workers"] == [] and data["healthy"] is False
    assert data["problems"] == ["no worker answered"] and data["database_reachable"] is True


def test_status_prints_a_summary_for_people_that_flags_a_stale_tick() -> None:
    heartbeat.record_tick(clock.utcnow() - timedelta(minutes=10))
    result = engage("status", "--ping-timeout", "0.2")
    assert result.code == 1, result.stderr  # the exit status follows "healthy"
    assert "backlog      0 (0 due, 0 queued; 0 waiting to retry)" in result.stdout
    assert "STALE" in result.stdout and "none answered" in result.stdout
    assert "UNHEALTHY: beat tick stale; no worker answered" in result.stdout


def test_status_reports_an_unreachable_database_and_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    result = engage(
        "status", "--json", "--ping-timeout", "0.2", env={"ENGAGE_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"}
    )
    assert result.code == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["healthy"] is False and data["database_reachable"] is False
    assert data["problems"][0] == "database unreachable"


def test_status_shows_a_provider_that_refuses_every_send_and_the_retries_waiting() -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    world = make_world()
    retrying = add_message(world, status=MessageStatus.SCHEDULED, due_at=now - timedelta(minutes=3))
    with session_scope() as session:
        session.execute(
            update(Message)
            .where(Message.id == retrying)
            .values(error_code="503", next_attempt_at=now + timedelta(minutes=2), last_error="twilio 503")
        )
    heartbeat.record_tick(now - timedelta(seconds=2))
    heartbeat.record_tick(now - timedelta(seconds=1), name=heartbeat.PROVIDER_OK.format(channel="sms"))
    heartbeat.record_tick(name=heartbeat.PROVIDER_FAILING.format(channel="sms"))  # newer: every send refused

    result = engage("status", "--json", "--ping-timeout", "0.2")
    data = json.loads(result.stdout)
    assert result.code == 1
    assert data["providers"]["sms"]["failing"] is True and data["providers"]["email"]["failing"] is False
    assert "sms provider failing" in data["problems"]
    assert data["backlog"]["retrying"] == 1 and data["backlog"]["total"] == 0


def test_status_heartbeat_exits_1_when_stale_and_0_when_fresh() -> None:
    assert engage("status", "--heartbeat").code == 1  # never ticked
    heartbeat.record_tick()
    fresh = engage("status", "--heartbeat", "--json")
    assert fresh.code == 0 and fresh.json["stale"] is False
    heartbeat.record_tick(clock.utcnow() + timedelta(days=40))  # ahead of now: says nothing about beat now
    ahead = engage("status", "--heartbeat")
    assert ahead.code == 1 and "STALE (dated in the future: check the clocks)" in ahead.stdout


def test_worker_ping_against_a_broker_that_is_down_says_so_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    from engage.config import get_settings

    monkeypatch.setenv("ENGAGE_BROKER_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    started = clock.utcnow()
    assert ops_status.ping_workers(timeout=0.5) is None
    assert (clock.utcnow() - started).total_seconds() < 10


def test_status_counts_webhook_events_still_owed_and_those_given_up_on() -> None:
    from engage.integrations.endpoints import create_endpoint
    from engage.records.outgoing_webhooks import EventStatus, EventType, WebhookEvent, emit

    now = datetime.now(timezone.utc).replace(microsecond=0)
    world = make_world()
    sent = [add_message(world, status=MessageStatus.SENT) for _ in range(3)]
    with session_scope() as session:
        create_endpoint(session, world.clinic_id, "https://pms.example.org/hooks", actor="admin@clinic.example")
    with clock.frozen(now - timedelta(minutes=5)), session_scope() as session:
        emit(session, EventType.MESSAGE_SENT, sent)
    with session_scope() as session:
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.subject_id == sent[0])
            .values(status=EventStatus.FAILED, next_attempt_at=None)
        )

    data = json.loads(engage("status", "--json", "--ping-timeout", "0.2").stdout)
    assert data["webhooks"] == {"pending": 2, "oldest_pending_age_seconds": pytest.approx(300, abs=60), "failed_7d": 1}
    assert "webhooks     2 pending (oldest " in engage("status", "--ping-timeout", "0.2").stdout
