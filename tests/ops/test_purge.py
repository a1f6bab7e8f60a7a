"""Data retention: ``engage purge --older-than 365d`` empties old contexts, payloads and reply texts, keeps the rest."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from engage import clock
from engage.config import get_settings
from engage.db import session_scope
from engage.ops import retention
from engage.records.models import AuditEvent, DeliveryEvent, InboundMessage, Message, MessageStatus, Outcome
from tests.cli import ROOT, engage
from tests.fixtures.webhooks.support import PATIENT_PHONE, World, add_message, make_world

pytestmark = pytest.mark.usefixtures("db_url")

YEAR = timedelta(days=365)


def _seed(world: World, age: timedelta, *, status: MessageStatus = MessageStatus.SENT) -> dict[str, int]:
    """One message with a context, its delivery event, a reply with a score: all ``age`` old."""
    at = clock.utcnow() - age
    message_id = add_message(world, status=status, due_at=at, sent_at=at)
    with session_scope() as session:
        session.execute(update(Message).where(Message.id == message_id).values(context={"day": 2}))
        event = DeliveryEvent(
            message_id=message_id,
            provider="twilio",
            event_id=f"ev-{message_id}",
            status="delivered",
            payload={"To": PATIENT_PHONE, "MessageStatus": "delivered"},
            received_at=at,
        )
        reply = InboundMessage(
            provider_sid=f"SM{message_id:032d}",
            patient_id=world.patient_id,
            from_phone=PATIENT_PHONE,
            body="7, my leg still hurts",
            kind="score",
            received_at=at,
        )
        session.add_all([event, reply])
        session.flush()
        session.add(
            Outcome(
                patient_id=world.patient_id,
                prompt_message_id=message_id,
                inbound_message_id=reply.id,
                score=7,
                source="sms",
                recorded_at=at,
            )
        )
        session.flush()
        return {"message": message_id, "event": event.id, "reply": reply.id}


def _state(ids: dict[str, int]) -> tuple[Message, DeliveryEvent, InboundMessage]:
    with session_scope() as session:
        return (
            session.get_one(Message, ids["message"]),
            session.get_one(DeliveryEvent, ids["event"]),
            session.get_one(InboundMessage, ids["reply"]),
        )


def test_purge_empties_what_is_past_the_window_and_keeps_ids_statuses_times_and_scores() -> None:
    world = make_world()
    old = _seed(world, YEAR + timedelta(days=10))
    recent = _seed(world, YEAR - timedelta(days=10))

    result = retention.purge(YEAR, actor="test")
    assert (result.messages, result.delivery_events, result.inbound_messages) == (1, 1, 1)

    message, event, reply = _state(old)
    assert message.context == {} and event.payload == {} and reply.body == ""
    assert message.status is MessageStatus.SENT and message.sent_at is not None and message.due_at is not None
    assert event.status == "delivered" and reply.kind == "score" and reply.received_at is not None
    with session_scope() as session:
        assert session.scalar(select(Outcome.score).where(Outcome.prompt_message_id == old["message"])) == 7
        [audit] = session.scalars(select(AuditEvent).where(AuditEvent.action == "purge")).all()
        assert audit.detail["messages"] == 1 and PATIENT_PHONE not in str(audit.detail)

    message, event, reply = _state(recent)
    assert message.context == {"day": 2} and event.payload["MessageStatus"] == "delivered"
    assert reply.body == "7, my leg still hurts"


def test_a_second_purge_finds_nothing_new() -> None:
    _seed(make_world(), YEAR * 2)
    assert retention.purge(YEAR, actor="test").messages == 1
    again = retention.purge(YEAR, actor="test")
    assert (again.messages, again.delivery_events, again.inbound_messages) == (0, 0, 0)


def test_purge_leaves_a_message_still_on_its_way_alone() -> None:
    ids = _seed(make_world(), YEAR * 2, status=MessageStatus.SCHEDULED)
    assert retention.purge(YEAR, actor="test").messages == 0
    assert _state(ids)[0].context == {"day": 2}


def test_purge_deletes_old_outbox_files_only() -> None:
    outbox = Path(get_settings().outbox_dir)
    outbox.mkdir(parents=True, exist_ok=True)
    old, new, other = outbox / "sms-1.json", outbox / "email-2.eml", outbox / "notes.txt"
    for path in (old, new, other):
        path.write_text("Hi Ana", encoding="utf-8")
    long_ago = (clock.utcnow() - YEAR * 2).timestamp()
    os.utime(old, (long_ago, long_ago))
    os.utime(other, (long_ago, long_ago))
    assert retention.purge(YEAR, actor="test").outbox_files == 1
    assert not old.exists() and new.exists() and other.exists()


def test_purge_refuses_a_window_shorter_than_thirty_days() -> None:
    with pytest.raises(ValueError, match="at least 30 days"):
        retention.purge(timedelta(days=1), actor="test")


def test_engage_purge_from_the_command_line() -> None:
    ids = _seed(make_world(), YEAR + timedelta(days=1))
    result = engage("purge", "--older-than", "365d", "--json")
    assert result.json["messages"] == 1 and result.json["inbound_messages"] == 1
    assert _state(ids)[2].body == ""

    for bad in ("1d", "a year"):
        refused = engage("purge", "--older-than", bad)
        assert refused.code == 2 and refused.stderr.startswith("error: ") and "Traceback" not in refused.stderr


def test_beat_runs_the_purge_weekly_only_when_a_window_is_set() -> None:
    script = (
        "import celeryconfig as c; e = c.beat_schedule.get('purge'); "
        "print(e and e['task'], e and sorted(e['schedule'].day_of_week))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    on = subprocess.run(
        [sys.executable, "-c", script],
        env={**env, "ENGAGE_PURGE_AFTER_DAYS": "365"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert on.stdout.split() == ["engage.purge", "[0]"], on.stderr
    off = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert off.stdout.split() == ["None", "None"], off.stderr


def test_the_weekly_task_purges_with_the_configured_window(monkeypatch: pytest.MonkeyPatch) -> None:
    from workers.tasks import purge

    ids = _seed(make_world(), timedelta(days=100))
    assert "skipped" in purge()  # no window set: nothing happens
    assert _state(ids)[0].context == {"day": 2}
    monkeypatch.setenv("ENGAGE_PURGE_AFTER_DAYS", "90")
    get_settings.cache_clear()
    assert purge()["messages"] == 1


def test_purge_deletes_settled_webhook_events_past_the_window_and_keeps_pending_ones() -> None:
    from engage.integrations.endpoints import create_endpoint
    from engage.records.outgoing_webhooks import EventStatus, EventType, WebhookEvent, emit

    world = make_world()
    old, recent = _seed(world, YEAR + timedelta(days=10)), _seed(world, YEAR - timedelta(days=10))
    with session_scope() as session:
        create_endpoint(session, world.clinic_id, "https://pms.example.org/hooks", actor="admin@clinic.example")
        session.execute(update(InboundMessage).values(clinic_id=world.clinic_id))
    for ids, age in ((old, YEAR + timedelta(days=10)), (recent, YEAR - timedelta(days=10))):
        with clock.frozen(clock.utcnow() - age), session_scope() as session:
            emit(session, EventType.MESSAGE_SENT, [ids["message"]])
            emit(session, EventType.REPLY_RECEIVED, [ids["reply"]])
    with session_scope() as session:  # the old message's event was delivered; the old reply's is still owed
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.subject_id == old["message"], WebhookEvent.type == EventType.MESSAGE_SENT)
            .values(status=EventStatus.DELIVERED)
        )

    assert retention.purge(YEAR, actor="test").webhook_events == 1
    with session_scope() as session:
        left = {(e.type, e.subject_id) for e in session.scalars(select(WebhookEvent))}
    assert left == {
        (EventType.REPLY_RECEIVED, old["reply"]),
        (EventType.MESSAGE_SENT, recent["message"]),
        (EventType.REPLY_RECEIVED, recent["reply"]),
    }
