"""Sending a batch of one channel with the database work once per batch (``engage.delivery.send_together``),
on SQLite and PostgreSQL, against the fake Twilio + SendGrid server: each row ends exactly as ``send_one`` would
have left it, and nothing is sent twice or to a patient who said STOP."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from engage import clock
from engage.config import get_settings
from engage.conversation.consent import record_consent
from engage.conversation.outcomes import record_staff_outcome
from engage.db import session_scope
from engage.delivery import outbox_rows, send_checks, send_together
from engage.delivery.batch import send_many
from engage.delivery.claim import claim_due
from engage.delivery.ratelimit import reset_limiters
from engage.delivery.send import Outcome, SendResult
from engage.integrations import endpoints
from engage.records.models import (
    Appointment,
    AppointmentStatus,
    Channel,
    ConsentState,
    Message,
    MessageStatus,
    Patient,
)
from engage.records.outgoing_webhooks import EventType, WebhookEvent
from tests.delivery.test_dispatch import SEND_AT, World, fake, make_world, row, templates  # noqa: F401
from tests.fakes.provider_server import FakeProviders


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """One send thread: the provider calls reach the fake server in the batch's order (its faults are a queue)."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        yield executor


def _worlds(session: Session, n: int) -> list[World]:
    worlds = [make_world(session, phone=f"+1212555{i:04d}", email=f"p{i}@example.org") for i in range(n)]
    session.commit()
    return worlds


def _outcomes(results: send_together.Results) -> dict[int, Outcome]:
    assert all(isinstance(r, SendResult) for r in results.values()), results
    return {i: r.outcome for i, r in results.items() if isinstance(r, SendResult)}


def test_a_batch_sends_each_due_row_once_and_writes_each_rows_own_verdict(
    session: Session,
    fake: FakeProviders,  # noqa: F811
    pool: ThreadPoolExecutor,
) -> None:
    sent, opted_out, cancelled, failing, unclaimed = _worlds(session, 5)
    fake.add_faults("sms", [{}, {"status": 503}])  # the first call goes, the second (failing's) is refused
    with clock.frozen(SEND_AT):
        claimed = claim_due(channel=Channel.SMS)
        assert unclaimed.sms_id in claimed
        session.execute(update(Message).where(Message.id == unclaimed.sms_id).values(status=MessageStatus.SCHEDULED))
        record_consent(session, opted_out.patient_id, Channel.SMS, ConsentState.OPTED_OUT, source="sms_keyword")
        session.execute(
            update(Appointment)
            .where(Appointment.id == cancelled.appointment_id)
            .values(status=AppointmentStatus.CANCELLED)
        )
        session.commit()
        ids = [w.sms_id for w in (sent, opted_out, cancelled, failing, unclaimed)]
        results = send_together.send_together(ids + [sent.sms_id], Channel.SMS, pool)

    assert _outcomes(results) == {
        sent.sms_id: Outcome.SENT,
        opted_out.sms_id: Outcome.SKIPPED,
        cancelled.sms_id: Outcome.CANCELLED,
        failing.sms_id: Outcome.RETRY,
        unclaimed.sms_id: Outcome.NOT_MINE,
    }
    [request] = fake.sms_requests(accepted_only=True)
    assert request["message_id"] == sent.sms_id
    stored = row(sent.sms_id)
    assert stored.status is MessageStatus.SENT and stored.attempts == 1
    assert stored.handed_at == SEND_AT and stored.provider_message_id == request["sid"]
    assert stored.segments == 2
    assert row(opted_out.sms_id).status is MessageStatus.SKIPPED and row(opted_out.sms_id).attempts == 0
    assert row(cancelled.sms_id).status is MessageStatus.CANCELLED
    retried = row(failing.sms_id)
    assert retried.status is MessageStatus.SCHEDULED and retried.handed_at is None and retried.attempts == 1
    assert row(unclaimed.sms_id).status is MessageStatus.SCHEDULED

    # A redelivered batch finds nothing queued and sends nothing.
    with clock.frozen(SEND_AT):
        again = send_together.send_together(ids, Channel.SMS, pool)
    assert set(_outcomes(again).values()) == {Outcome.NOT_MINE}
    assert len(fake.sms_requests(accepted_only=True)) == 1


def test_send_many_sends_a_batch_and_owes_each_sent_message_its_event(
    session: Session,
    fake: FakeProviders,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENGAGE_WEBHOOK_ALLOW_LOCAL", "1")
    get_settings.cache_clear()
    worlds = _worlds(session, 3)
    for world in worlds:
        with session_scope() as s:
            clinic_id = s.get_one(Patient, world.patient_id).clinic_id
            endpoints.create_endpoint(s, clinic_id, "http://127.0.0.1:9/hook", actor="admin@clinic.example")
    with clock.frozen(SEND_AT):
        claimed = claim_due(channel=Channel.EMAIL)
        counts = send_many(claimed, Channel.EMAIL)
    assert counts["sent"] == 3 and counts["error"] == 0
    emails = sorted(w.email_id for w in worlds)
    assert sorted(r["message_id"] for r in fake.email_requests(accepted_only=True)) == emails
    assert all(row(i).status is MessageStatus.SENT and row(i).sent_at == SEND_AT for i in emails)
    with session_scope() as check:
        owed = check.execute(select(WebhookEvent.type, WebhookEvent.subject_id)).all()
    assert sorted(owed) == [(EventType.MESSAGE_SENT, i) for i in emails]


def test_an_unexpected_error_checking_one_row_rolls_the_batch_back_and_sends_it_one_by_one(
    session: Session,
    fake: FakeProviders,  # noqa: F811
    pool: ThreadPoolExecutor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good, broken_one = _worlds(session, 2)
    real = send_checks.message_context

    def broken(session: Session, message: Message, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if message.id == broken_one.sms_id:
            raise RuntimeError("a bug")
        return real(session, message, *args, **kwargs)

    monkeypatch.setattr(send_checks, "message_context", broken)
    with clock.frozen(SEND_AT):
        claim_due(channel=Channel.SMS)
        results = send_together.send_together([good.sms_id, broken_one.sms_id], Channel.SMS, pool)
    assert isinstance(results[good.sms_id], SendResult) and results[good.sms_id].outcome is Outcome.SENT
    assert isinstance(results[broken_one.sms_id], RuntimeError)
    stored = row(broken_one.sms_id)
    assert stored.status is MessageStatus.SCHEDULED and stored.attempts == 1 and stored.error_code == "internal"
    assert [r["message_id"] for r in fake.sms_requests()] == [good.sms_id]


def test_a_database_failure_before_the_hand_over_puts_the_whole_batch_back_queued(
    session: Session,
    fake: FakeProviders,  # noqa: F811
    pool: ThreadPoolExecutor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worlds = _worlds(session, 2)

    def gone(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("UPDATE message", {}, Exception("server closed the connection"))

    monkeypatch.setattr(send_together, "hand_over_many", gone)
    monkeypatch.setattr(send_together.spool, "retake_later", lambda ids: False)  # no Redis here: the reaper's
    with clock.frozen(SEND_AT):
        claim_due(channel=Channel.SMS)
        results = send_together.send_together([w.sms_id for w in worlds], Channel.SMS, pool)
    assert set(_outcomes(results).values()) == {Outcome.DEFERRED}
    for w in worlds:
        stored = row(w.sms_id)
        assert stored.status is MessageStatus.QUEUED and stored.attempts == 0 and stored.handed_at is None
    assert fake.sms_requests() == []


def test_results_the_database_cannot_take_are_written_on_a_retry(
    session: Session,
    fake: FakeProviders,  # noqa: F811
    pool: ThreadPoolExecutor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worlds = _worlds(session, 2)
    real = outbox_rows.record_accepted_many
    calls: list[int] = []

    def flaky(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("UPDATE message", {}, Exception("database is locked"))
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(send_together, "record_accepted_many", flaky)
    with clock.frozen(SEND_AT):
        claim_due(channel=Channel.SMS)
        results = send_together.send_together([w.sms_id for w in worlds], Channel.SMS, pool)
    assert set(_outcomes(results).values()) == {Outcome.SENT} and len(calls) == 2
    for w in worlds:
        assert row(w.sms_id).status is MessageStatus.SENT
    assert len(fake.sms_requests()) == 2


def test_a_batch_of_emails_shows_each_patient_their_own_pain_scores(
    session: Session,
    fake: FakeProviders,  # noqa: F811
    templates: Path,  # noqa: F811
) -> None:
    (templates / "email/info.txt").write_text("Hello {{ patient.first_name }}. Pain: {{ pain_scores|join(', ') }}.\n")
    scored, unscored, other = _worlds(session, 3)
    with clock.frozen(SEND_AT - timedelta(days=2)):
        record_staff_outcome(session, scored.patient_id, 7, actor="pt@clinic.example")
    with clock.frozen(SEND_AT - timedelta(days=1)):
        record_staff_outcome(session, scored.patient_id, 4, actor="pt@clinic.example")
        record_staff_outcome(session, other.patient_id, 2, actor="pt@clinic.example")
    session.commit()
    with clock.frozen(SEND_AT):
        counts = send_many(claim_due(channel=Channel.EMAIL), Channel.EMAIL)
    assert counts["sent"] == 3
    texts = {r["message_id"]: r["text"] for r in fake.email_requests(accepted_only=True)}
    assert "Pain: 7, 4." in texts[scored.email_id]
    assert "Pain: ." in texts[unscored.email_id]
    assert "Pain: 2." in texts[other.email_id]


def test_a_batch_takes_its_rate_limit_slots_in_one_step_and_puts_back_those_beyond_the_wait(
    session: Session,
    fake: FakeProviders,  # noqa: F811
    pool: ThreadPoolExecutor,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENGAGE_REDIS_URL", redis_url)
    monkeypatch.setenv("ENGAGE_SMS_RATE_PER_SECOND", "0.01")  # one SMS every 100 s, for every worker
    get_settings.cache_clear()
    reset_limiters()
    first, second, third = _worlds(session, 3)
    try:
        with clock.frozen(SEND_AT):
            claim_due(channel=Channel.SMS)
            results = send_together.send_together([first.sms_id, second.sms_id, third.sms_id], Channel.SMS, pool)
    finally:
        reset_limiters()
    outcomes = _outcomes(results)
    assert outcomes == {first.sms_id: Outcome.SENT, second.sms_id: Outcome.DEFERRED, third.sms_id: Outcome.DEFERRED}
    assert [r["message_id"] for r in fake.sms_requests()] == [first.sms_id]
    for later in (second, third):
        stored = row(later.sms_id)
        assert stored.status is MessageStatus.SCHEDULED and stored.attempts == 0
        assert stored.next_attempt_at is not None and stored.next_attempt_at > SEND_AT + timedelta(seconds=89)


def test_a_batch_interrupted_with_calls_in_flight_still_writes_their_answers(
    session: Session,
    fake: FakeProviders,  # noqa: F811
    pool: ThreadPoolExecutor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from celery.exceptions import SoftTimeLimitExceeded

    first, second = _worlds(session, 2)
    real = send_together._take_and_prepare

    def interrupted(message_ids: list[int], now: Any) -> Any:
        if second.sms_id in message_ids:
            raise SoftTimeLimitExceeded()  # the task's time is up while the second chunk is prepared
        return real(message_ids, now)

    monkeypatch.setattr(send_together, "PREPARE_CHUNK", 1)
    monkeypatch.setattr(send_together, "_take_and_prepare", interrupted)
    with clock.frozen(SEND_AT):
        claim_due(channel=Channel.SMS)
        with pytest.raises(SoftTimeLimitExceeded):
            send_together.send_together([first.sms_id, second.sms_id], Channel.SMS, pool)
    pool.shutdown(wait=True)  # the answer is written on a send thread
    assert row(first.sms_id).status is MessageStatus.SENT
    assert row(second.sms_id).status is MessageStatus.QUEUED  # never taken: the reaper re-enqueues it
    assert [r["message_id"] for r in fake.sms_requests()] == [first.sms_id]
