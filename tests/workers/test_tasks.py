"""The Celery tasks through a real (in-process) worker on the memory broker, on SQLite and PostgreSQL.

The tasks are thin: these tests check that they wire ``engage.delivery`` to the
broker correctly (claim -> one send task per id, reaper -> re-enqueue), that a
transient failure goes back to the outbox schedule instead of a Celery retry,
and that ``celeryconfig`` refuses time limits that contradict each other.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from engage import clock
from engage.config import get_settings
from engage.db import session_scope
from engage.delivery.providers import reset_providers
from engage.records.models import Message, MessageStatus
from tests.bench.bench_delivery import ROOT, seed_due_messages
from tests.fakes.provider_server import FakeProviders
from tests.workers.conftest import queue_sizes


def _status(message_id: int) -> Message:
    with session_scope() as session:
        return session.get_one(Message, message_id)


def test_dispatch_due_enqueues_a_send_per_due_message_and_each_lands_in_the_outbox(worker: Any, tmp_path: Path) -> None:
    from workers.tasks import dispatch_due

    seeded = seed_due_messages(3, 2)
    assert dispatch_due.delay().get(timeout=30, interval=0.01) == 5
    outbox = Path(get_settings().outbox_dir)
    for message_id in seeded["sms"]:
        _wait_sent(message_id)
        assert (outbox / f"sms-{message_id}.json").is_file()
    for message_id in seeded["email"]:
        _wait_sent(message_id)
        assert (outbox / f"email-{message_id}.eml").is_file()
    # A second tick finds nothing due: the rows are the schedule, not the queue.
    assert dispatch_due.delay().get(timeout=30, interval=0.01) == 0


def _wait_sent(message_id: int, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while _status(message_id).status is not MessageStatus.SENT:
        assert time.monotonic() < deadline, f"message {message_id} is {_status(message_id).status.value}"
        time.sleep(0.05)


def test_send_message_for_a_row_nobody_claimed_does_nothing(worker: Any) -> None:
    from workers.tasks import send_message

    [message_id] = seed_due_messages(1, 0)["sms"]
    assert send_message.delay(message_id).get(timeout=30, interval=0.01) == "not_mine"
    row = _status(message_id)
    assert row.status is MessageStatus.SCHEDULED and row.attempts == 0
    assert not (Path(get_settings().outbox_dir) / f"sms-{message_id}.json").exists()


def test_duplicate_send_tasks_for_one_claimed_row_send_it_once(worker: Any) -> None:
    from engage.delivery.claim import claim_due
    from workers.tasks import send_message

    [message_id] = seed_due_messages(1, 0)["sms"]
    assert claim_due() == [message_id]
    first, second = send_message.delay(message_id), send_message.delay(message_id)
    assert [first.get(timeout=30, interval=0.01), second.get(timeout=30, interval=0.01)] == ["sent", "not_mine"]
    assert _status(message_id).attempts == 1


def test_transient_provider_error_goes_back_to_the_schedule_not_to_a_celery_retry(
    worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engage.delivery.claim import claim_due
    from workers.tasks import send_message

    with FakeProviders() as fake:
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        reset_providers()
        [message_id] = seed_due_messages(1, 0)["sms"]
        fake.add_faults("sms", [{"status": 503}])
        assert claim_due() == [message_id]
        assert send_message.delay(message_id).get(timeout=30, interval=0.01) == "retry"
        row = _status(message_id)
        assert row.status is MessageStatus.SCHEDULED
        assert row.next_attempt_at is not None and row.next_attempt_at > row.due_at
        assert len(fake.sms_requests()) == 1 and not fake.sms_requests(accepted_only=True)
        assert set(queue_sizes().values()) == {0}  # no countdown task waiting anywhere
        # The next tick after the backoff sends it, once.
        with session_scope() as session:
            session.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(next_attempt_at=clock.utcnow() - timedelta(seconds=1))
            )
        assert claim_due() == [message_id]
        assert send_message.delay(message_id).get(timeout=30, interval=0.01) == "sent"
        assert [r["message_id"] for r in fake.sms_requests(accepted_only=True)] == [message_id]


def test_reap_stale_reenqueues_lost_queued_rows_and_never_resends_stale_sending_ones(worker: Any) -> None:
    from workers.tasks import reap_stale

    seeded = seed_due_messages(2, 0)
    lost, stuck = seeded["sms"]
    long_ago = clock.utcnow() - timedelta(hours=1)
    with session_scope() as session:
        session.execute(
            update(Message).where(Message.id == lost).values(status=MessageStatus.QUEUED, queued_at=long_ago)
        )
        session.execute(
            update(Message)
            .where(Message.id == stuck)
            .values(status=MessageStatus.SENDING, sending_at=long_ago, handed_at=long_ago, attempts=1)
        )
    assert reap_stale.delay().get(timeout=30, interval=0.01) == {"requeued": 1, "unknown": 1, "failed": 0}
    _wait_sent(lost)
    assert _status(stuck).status is MessageStatus.UNKNOWN
    outbox = Path(get_settings().outbox_dir)
    assert (outbox / f"sms-{lost}.json").is_file()
    assert not (outbox / f"sms-{stuck}.json").exists()
    with session_scope() as session:
        assert session.scalar(select(Message.attempts).where(Message.id == stuck)) == 1


def _import_celeryconfig(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """Run ``celeryconfig.py`` as a worker's import would, with only ``env`` of engage's settings set.

    ``runpy`` runs the file in a namespace of its own (the imported ``celeryconfig`` is untouched), in this
    process: a subprocess cost a second of imports for each case.
    """
    for name in [k for k in os.environ if k.startswith("ENGAGE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        return runpy.run_path(str(ROOT / "celeryconfig.py"))
    finally:
        get_settings.cache_clear()


def test_celeryconfig_reads_the_tick_and_keeps_at_least_once_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    c = _import_celeryconfig(monkeypatch, ENGAGE_TICK_SECONDS="2")
    assert c["task_acks_late"] is True and c["worker_prefetch_multiplier"] == 1
    assert c["broker_transport_options"]["visibility_timeout"] == 900.0
    assert c["beat_schedule"]["dispatch-due"]["schedule"] == 2.0


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ENGAGE_STALE_SENDING_SECONDS": "20"}, "ENGAGE_STALE_SENDING_SECONDS"),
        ({"ENGAGE_VISIBILITY_TIMEOUT": "100"}, "ENGAGE_VISIBILITY_TIMEOUT"),
        ({"ENGAGE_STALE_QUEUED_SECONDS": "10"}, "ENGAGE_STALE_QUEUED_SECONDS"),
        ({"ENGAGE_SEND_SOFT_TIME_LIMIT": "5"}, "ENGAGE_SEND_SOFT_TIME_LIMIT"),
        ({"ENGAGE_SEND_BATCH": "64", "ENGAGE_SEND_THREADS": "32"}, "ENGAGE_SEND_BATCH"),
    ],
)
def test_celeryconfig_refuses_time_limits_that_contradict_each_other(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        _import_celeryconfig(monkeypatch, **env)


def test_beat_posts_outgoing_webhooks_every_tick_on_their_own_queue() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import celeryconfig as c; e = c.beat_schedule['deliver-webhooks']; "
            "print(e['task'], e['schedule'], e['options']['queue'], c.task_routes['engage.deliver_webhooks']['queue'])",
        ],
        cwd=ROOT,
        env={**os.environ, "ENGAGE_TICK_SECONDS": "3", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["engage.deliver_webhooks", "3.0", "engage.webhooks", "engage.webhooks"]


def test_deliver_webhooks_posts_due_events_through_a_worker(worker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from engage.conversation.outcomes import record_staff_outcome
    from engage.integrations.endpoints import create_endpoint
    from engage.records.outgoing_webhooks import EventStatus, WebhookEvent
    from tests import seed
    from tests.fakes.webhook_receiver import WebhookReceiver
    from workers.tasks import deliver_webhooks

    monkeypatch.setenv("ENGAGE_WEBHOOK_ALLOW_LOCAL", "1")  # the receiver is on this machine
    get_settings.cache_clear()
    with WebhookReceiver() as receiver:
        with session_scope() as session:
            clinic = seed.clinic(session)
            patient = seed.patient(session, clinic.id)
            create_endpoint(session, clinic.id, receiver.url, actor="admin@clinic.example")
            outcome = record_staff_outcome(session, patient.id, 3, actor="test")
            outcome_id = outcome.id
        counts = deliver_webhooks.apply_async(queue="engage.webhooks", routing_key="engage.webhooks").get(
            timeout=30, interval=0.01
        )
        assert counts == {"delivered": 1, "retry": 0, "failed": 0}
        [post] = receiver.posts()
    assert post.headers["webhook-id"] == f"evt_outcome_recorded_{outcome_id}"
    with session_scope() as session:
        assert session.scalar(select(WebhookEvent.status)) is EventStatus.DELIVERED
