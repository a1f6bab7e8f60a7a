"""Claiming due messages and sending one, on SQLite and PostgreSQL, against the fake Twilio + SendGrid server.

Each test builds a real enrollment (planned by ``engage.schedule.reconcile`` from a small
sequence in a temporary templates folder), then drives ``claim_due`` /
``send_one`` / ``reap_stale`` / ``tick`` at frozen times and checks what the
fake server received and what the outbox row says.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from engage import clock
from engage.config import get_settings
from engage.content.condition_words import condition_words_in
from engage.content.links import unsubscribe_url
from engage.conversation.consent import current_consent, record_consent
from engage.db import session_scope
from engage.delivery import dispatch, outbox_rows, send, send_checks
from engage.delivery.claim import claim_due, reap_stale
from engage.delivery.providers import reset_providers
from engage.delivery.providers.base import ConfigurationError
from engage.delivery.send import Outcome, send_one
from engage.records.models import (
    Appointment,
    AppointmentStatus,
    Channel,
    Clinic,
    ConsentEvent,
    ConsentState,
    Enrollment,
    Message,
    MessageStatus,
    Patient,
    TreatmentPlan,
)
from engage.schedule.appointments import move_appointment
from engage.schedule.reconcile import reconcile_enrollment
from tests.fakes.provider_server import FakeProviders
from tests.fakes.state import FAKE_FROM_NUMBER

UTC = timezone.utc
ENROLLED_AT = datetime(2030, 6, 1, 14, 0, tzinfo=UTC)
APPOINTMENT_AT = datetime(2030, 6, 12, 15, 0, tzinfo=UTC)  # 11:00 in New York (EDT)
EMAIL_DUE = APPOINTMENT_AT - timedelta(hours=48)
SMS_DUE = APPOINTMENT_AT - timedelta(hours=24)
SEND_AT = SMS_DUE + timedelta(minutes=5)  # both due, 11:05 local: outside quiet hours
PHONE = "+12125550147"
EMAIL = "ana.lopez@example.org"
FIRST_NAME = "Anaïs"

SEQUENCE = """\
key: test-visits
name: Test visits
steps:
  - key: info
    channel: email
    template: info
    anchor: appointment.start
    appointments: first
    offset: -48h
  - key: reminder
    channel: sms
    template: reminder
    anchor: appointment.start
    appointments: each
    offset: -24h
"""

TEMPLATES = {
    "sequences/test-visits.yaml": SEQUENCE,
    "sms/reminder.txt": "Hi {{ patient.first_name }}, see you {{ appointment.start|local_datetime }} "
    "at {{ clinic.name }}.\n",
    "email/info.subject.txt": "Your first visit at {{ clinic.name }}\n",
    "email/info.txt": "Hello {{ patient.first_name }},\n\nSee you soon.\n\n{{ clinic.address }}\n"
    "Unsubscribe: {{ unsubscribe_url }}\n",
    "email/info.html": "<p>Hello {{ patient.first_name }},</p><p>See you soon.</p><p>{{ clinic.address }}</p>"
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>\n',
}


def tick_at(now: datetime) -> dict[str, int]:
    """A whole tick as if at ``now`` on the fake providers: the test's clock, not ``engage tick --now``
    (which refuses a future time with a real provider)."""
    with clock.frozen(now):
        return dispatch.tick()


def write_templates(root: Path) -> Path:
    for name, text in TEMPLATES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture(autouse=True)
def templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = write_templates(tmp_path / "templates")
    monkeypatch.setenv("ENGAGE_TEMPLATES_DIR", str(root))
    get_settings.cache_clear()
    reset_providers()
    return root


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProviders]:
    """The fake Twilio + SendGrid server, with engage's providers pointed at it over real HTTP."""
    with FakeProviders() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        reset_providers()
        yield server
    reset_providers()


@dataclass
class World:
    patient_id: int
    appointment_id: int
    enrollment_id: int
    sms_id: int
    email_id: int


def make_world(session: Session, *, phone: str | None = PHONE, email: str | None = EMAIL) -> World:
    """A clinic, a patient in New York, one appointment, enrolled: one email and one SMS scheduled."""
    with clock.frozen(ENROLLED_AT):
        clinic = Clinic(
            name="Riverside Physio",
            timezone="America/New_York",
            address="1 River St\nSpringfield",
            email_from="care@riverside.example",
            quiet_hours={},
        )
        patient = Patient(clinic=clinic, first_name=FIRST_NAME, last_name="López", email=email, phone=phone)
        plan = TreatmentPlan(
            patient=patient, condition="sciatica", modality="dry needling", planned_sessions=1, cadence_minutes=10080
        )
        appointment = Appointment(plan=plan, start_at=APPOINTMENT_AT, end_at=APPOINTMENT_AT + timedelta(minutes=45))
        session.add_all([clinic, patient, plan, appointment])
        session.flush()
        enrollment = Enrollment(
            patient_id=patient.id,
            plan_id=plan.id,
            sequence_key="test-visits",
            created_at=ENROLLED_AT,
            updated_at=ENROLLED_AT,
        )
        session.add(enrollment)
        session.flush()
        reconcile_enrollment(session, enrollment.id)
        session.commit()
    query = select(Message.step_key, Message.id).where(Message.enrollment_id == enrollment.id)
    ids = dict(session.execute(query).all())
    session.commit()  # end the read transaction: on SQLite every transaction holds the write lock
    return World(patient.id, appointment.id, enrollment.id, ids["reminder"], ids["info"])


def row(message_id: int) -> Message:
    with session_scope() as session:
        return session.get_one(Message, message_id)


def claim_and_send(message_id: int, at: datetime = SEND_AT) -> send.SendResult:
    with clock.frozen(at):
        assert message_id in claim_due()
        return send_one(message_id)


# --- claiming ------------------------------------------------------------------------------------


def test_claim_takes_only_due_rows_oldest_first_and_marks_them_queued(session: Session) -> None:
    world = make_world(session)
    with clock.frozen(EMAIL_DUE + timedelta(minutes=1)):
        assert claim_due() == [world.email_id]  # the SMS is not due yet
    assert row(world.email_id).status is MessageStatus.QUEUED
    assert row(world.email_id).queued_at == EMAIL_DUE + timedelta(minutes=1)
    assert row(world.sms_id).status is MessageStatus.SCHEDULED
    with clock.frozen(SEND_AT):
        assert claim_due() == [world.sms_id]
        assert claim_due() == []  # already claimed


def test_claim_waits_for_next_attempt_at_and_honours_the_limit(session: Session) -> None:
    world = make_world(session)
    session.execute(
        update(Message).where(Message.id == world.email_id).values(next_attempt_at=SEND_AT + timedelta(minutes=10))
    )
    session.commit()
    with clock.frozen(SEND_AT):
        assert claim_due(limit=5) == [world.sms_id]
    with clock.frozen(SEND_AT + timedelta(minutes=10)):
        assert claim_due(limit=5) == [world.email_id]


def _insert_due(session: Session, world: World, count: int) -> list[int]:
    clinic_id = session.get_one(Patient, world.patient_id).clinic_id
    rows = [
        {
            "enrollment_id": world.enrollment_id,
            "patient_id": world.patient_id,
            "clinic_id": clinic_id,
            "step_key": "bulk",
            "occurrence": f"n:{i}",
            "channel": Channel.SMS,
            "template": "reminder",
            "context": {},
            "due_at": SEND_AT - timedelta(seconds=i),
            "status": MessageStatus.SCHEDULED,
            "attempts": 0,
            "created_at": ENROLLED_AT,
            "updated_at": ENROLLED_AT,
        }
        for i in range(count)
    ]
    session.execute(insert(Message), rows)
    session.commit()
    ids = sorted(session.scalars(select(Message.id).where(Message.step_key == "bulk")).all())
    session.commit()
    return ids


def test_concurrent_claimers_never_get_the_same_row(session: Session) -> None:
    world = make_world(session)
    expected = _insert_due(session, world, 400)
    claimed: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    start = threading.Barrier(4)

    def claimer(slot: int) -> None:
        try:
            start.wait()
            with clock.frozen(SEND_AT):
                while batch := claim_due(limit=9):
                    claimed[slot].extend(batch)
                    time.sleep(0.001)  # a worker does something with its batch; on SQLite one thread could loop alone
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    everything = [i for batch in claimed for i in batch]
    assert len(everything) == len(set(everything))  # no id twice
    assert set(everything) == set(expected) | {world.sms_id, world.email_id}
    assert sum(1 for batch in claimed if batch) >= 2  # they really did compete


def test_claimers_in_separate_processes_split_the_rows_on_postgresql(pg_url: str) -> None:
    from engage.db import session_factory

    with session_factory()() as session:
        world = make_world(session)
        expected = set(_insert_due(session, world, 600)) | {world.sms_id, world.email_id}
    script = textwrap.dedent(f"""
        from datetime import datetime
        from engage import clock
        from engage.delivery.claim import claim_due
        got = []
        with clock.frozen(datetime.fromisoformat({SEND_AT.isoformat()!r})):
            while batch := claim_due(limit=7):
                got.extend(batch)
        print(",".join(map(str, got)))
    """)
    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, text=True) for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    per_process = [[int(x) for x in out.split(",") if x] for out in outputs]
    everything = [i for ids in per_process for i in ids]
    assert len(everything) == len(set(everything))
    assert set(everything) == expected


# --- sending: the happy paths --------------------------------------------------------------------


def test_sms_goes_to_twilio_with_our_id_in_the_status_callback(session: Session, fake: FakeProviders) -> None:
    world = make_world(session)
    result = claim_and_send(world.sms_id)

    assert result.outcome is Outcome.SENT
    [request] = fake.sms_requests()
    assert request["to"] == PHONE
    assert request["from"] == FAKE_FROM_NUMBER
    assert request["body"].startswith(f"Hi {FIRST_NAME}, see you Wednesday, June 12 at 11:00 AM")
    assert "Riverside Physio" in request["body"]
    assert request["status_callback"] == f"http://engage.test/webhooks/twilio/status?m={world.sms_id}"
    assert request["message_id"] == world.sms_id
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.SENT
    assert stored.provider == "twilio"
    assert stored.provider_message_id == request["sid"] == result.provider_message_id
    assert stored.segments == 2  # "ï" is not GSM-7: UCS-2, 67 characters a segment
    assert stored.sent_at == SEND_AT
    assert stored.handed_at == SEND_AT  # committed just before the call
    assert stored.attempts == 1


def test_email_goes_to_sendgrid_with_our_id_and_one_click_unsubscribe(session: Session, fake: FakeProviders) -> None:
    world = make_world(session)
    result = claim_and_send(world.email_id)

    assert result.outcome is Outcome.SENT
    [request] = fake.email_requests()
    assert request["to"] == EMAIL
    assert request["from"] == "care@riverside.example"
    assert request["from_name"] == "Riverside Physio"
    assert request["subject"] == "Your first visit at Riverside Physio"
    assert request["custom_args"] == {"engage_message_id": str(world.email_id)}
    link = unsubscribe_url(world.patient_id, "email")
    assert request["headers"]["List-Unsubscribe"] == f"<{link}>"
    assert request["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert request["content_types"] == ["text/plain", "text/html"]
    assert link in request["text"] and "1 River St" in request["text"]
    stored = row(world.email_id)
    assert stored.status is MessageStatus.SENT
    assert stored.provider == "sendgrid"
    assert stored.provider_message_id == request["sg_message_id"]
    assert stored.segments is None


def test_a_second_send_of_the_same_id_is_not_mine_and_nothing_is_sent_twice(
    session: Session, fake: FakeProviders
) -> None:
    world = make_world(session)
    assert claim_and_send(world.sms_id).outcome is Outcome.SENT
    with clock.frozen(SEND_AT):
        assert send_one(world.sms_id).outcome is Outcome.NOT_MINE
    assert len(fake.sms_requests(accepted_only=True)) == 1
    assert row(world.sms_id).attempts == 1


def test_concurrent_sends_of_one_id_reach_the_provider_once(session: Session, fake: FakeProviders) -> None:
    world = make_world(session)
    with clock.frozen(SEND_AT):
        claim_due()
    outcomes: list[Outcome] = []

    def worker() -> None:
        with clock.frozen(SEND_AT):
            outcomes.append(send_one(world.sms_id).outcome)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == sorted([Outcome.SENT] + [Outcome.NOT_MINE] * 3)
    assert len(fake.sms_requests()) == 1


# --- transient errors ----------------------------------------------------------------------------


def test_429_reschedules_no_earlier_than_retry_after(session: Session, fake: FakeProviders) -> None:
    world = make_world(session)
    fake.add_faults("sms", [{"status": 429, "retry_after": 900}])
    result = claim_and_send(world.sms_id)

    assert result.outcome is Outcome.RETRY
    assert result.delay is not None and result.delay >= 900
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.SCHEDULED
    assert stored.next_attempt_at is not None and stored.next_attempt_at >= SEND_AT + timedelta(seconds=900)
    assert stored.error_code == "20429" and "rate limited" in (stored.last_error or "")
    assert stored.handed_at is None  # refused: the next attempt starts afresh
    with clock.frozen(SEND_AT + timedelta(seconds=899)):
        assert claim_due() == []  # not before Retry-After
    tick_at(stored.next_attempt_at)
    assert row(world.sms_id).status is MessageStatus.SENT
    assert len(fake.sms_requests(accepted_only=True)) == 1


def test_503_then_success_sends_once_on_the_next_tick(session: Session, fake: FakeProviders) -> None:
    world = make_world(session)
    fake.add_faults("email", [{"status": 503}])
    first = claim_and_send(world.email_id)
    assert first.outcome is Outcome.RETRY
    delay = timedelta(seconds=first.delay or 0)
    assert timedelta(seconds=1) <= delay <= timedelta(seconds=get_settings().retry_base_seconds)

    counts = tick_at(SEND_AT + delay)
    assert counts["sent"] >= 1
    assert [r["status"] for r in fake.email_requests()] == [503, 202]
    stored = row(world.email_id)
    assert stored.status is MessageStatus.SENT and stored.attempts == 2
    assert stored.last_error is None and stored.next_attempt_at is None


def _closed_port_url() -> str:
    """A local URL where nothing listens: connecting is refused before a byte of the request leaves."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_a_refused_connection_is_retried(
    session: Session, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(session)
    monkeypatch.setenv("ENGAGE_TWILIO_API_BASE", _closed_port_url())
    get_settings.cache_clear()
    reset_providers()
    first = claim_and_send(world.sms_id)
    assert first.outcome is Outcome.RETRY
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.SCHEDULED and stored.error_code == "connection"
    assert stored.handed_at is None

    monkeypatch.setenv("ENGAGE_TWILIO_API_BASE", fake.url)  # Twilio is reachable again
    get_settings.cache_clear()
    reset_providers()
    tick_at(stored.next_attempt_at)
    assert row(world.sms_id).status is MessageStatus.SENT
    assert len(fake.sms_requests()) == 1


@pytest.mark.parametrize("kind", ["sms", "email"])
def test_a_connection_dropped_after_the_vendor_accepted_marks_the_row_unknown_and_it_is_not_resent(
    session: Session, fake: FakeProviders, kind: str
) -> None:
    # The vendor read the whole request and queued the message; only its answer was lost. Sending again
    # would reach the patient twice.
    world = make_world(session)
    message_id = world.sms_id if kind == "sms" else world.email_id
    fake.add_faults(kind, [{"accept_then_drop": True}])
    result = claim_and_send(message_id)

    assert result.outcome is Outcome.UNKNOWN
    stored = row(message_id)
    assert stored.status is MessageStatus.UNKNOWN and stored.error_code == "connection_lost"
    assert stored.handed_at == SEND_AT and "check before resending" in (stored.status_reason or "")
    tick_at(SEND_AT + timedelta(hours=1))
    tick_at(SEND_AT + timedelta(days=1))
    assert row(message_id).status is MessageStatus.UNKNOWN
    count = fake.count()
    assert (count[kind], count[f"{kind}_total"]) == (1, 1)


def test_a_lost_answer_marks_the_message_unknown_and_never_resends_it(
    session: Session, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The vendor accepted but its answer came after our timeout: resending would text the patient twice.
    monkeypatch.setenv("ENGAGE_HTTP_TIMEOUT_SECONDS", "0.5")
    get_settings.cache_clear()
    reset_providers()
    world = make_world(session)
    fake.add_faults("sms", [{"delay": 1.5}])
    result = claim_and_send(world.sms_id)

    assert result.outcome is Outcome.UNKNOWN
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.UNKNOWN and stored.error_code == "read_timeout"
    assert "check before resending" in (stored.status_reason or "")
    counts = tick_at(SEND_AT + timedelta(hours=1))
    assert counts["sent"] == 1 and counts["requeued"] == 1  # the email, left queued by claim_and_send
    assert row(world.sms_id).status is MessageStatus.UNKNOWN
    _wait_for(lambda: len(fake.sms_requests(accepted_only=True)) == 1)
    assert len(fake.sms_requests()) == 1


def _wait_for(condition: object, seconds: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_out_of_attempts_the_message_fails(
    session: Session, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGAGE_MAX_ATTEMPTS", "3")
    get_settings.cache_clear()
    reset_providers()
    world = make_world(session)
    fake.add_faults("sms", [{"status": 503}] * 3)
    at = SEND_AT
    outcomes = []
    for _ in range(3):
        with clock.frozen(at):
            assert world.sms_id in claim_due()
            result = send_one(world.sms_id)
        outcomes.append(result.outcome)
        at = at + timedelta(seconds=(result.delay or 0) + 1)
    assert outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.FAILED]
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.FAILED and stored.attempts == 3
    assert "gave up after 3 attempts" in (stored.status_reason or "")
    assert len(fake.sms_requests(accepted_only=True)) == 0


def test_backoff_grows_exponentially_with_full_jitter_under_the_cap() -> None:
    settings = get_settings()
    for attempt in range(1, 12):
        ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** (attempt - 1))
        delays = [send.backoff_seconds(attempt) for _ in range(200)]
        assert all(1.0 <= d <= ceiling for d in delays)
        if ceiling > 10:
            assert max(delays) - min(delays) > ceiling / 4  # spread out, not a fixed step
    assert send.backoff_seconds(1, retry_after=5000) == 5000


# --- permanent errors ----------------------------------------------------------------------------


def test_invalid_number_fails_and_marks_the_phone_invalid(session: Session, fake: FakeProviders) -> None:
    world = make_world(session)
    fake.add_faults("sms", [{"status": 400, "code": 21211}])
    result = claim_and_send(world.sms_id)

    assert result.outcome is Outcome.FAILED
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.FAILED and stored.error_code == "21211"
    assert stored.status_reason == "invalid 'To' number"
    assert PHONE not in (stored.last_error or "")
    with session_scope() as s:
        assert s.get_one(Patient, world.patient_id).phone_invalid is True


def test_twilio_21610_fails_and_records_an_sms_opt_out(session: Session, fake: FakeProviders) -> None:
    world = make_world(session)
    fake.add_faults("sms", [{"status": 400, "code": 21610}])
    result = claim_and_send(world.sms_id)

    assert result.outcome is Outcome.FAILED
    assert row(world.sms_id).error_code == "21610"
    with session_scope() as s:
        assert current_consent(s, world.patient_id, Channel.SMS) is ConsentState.OPTED_OUT
        event = s.scalars(select(ConsentEvent).where(ConsentEvent.patient_id == world.patient_id)).one()
        assert (event.channel, event.source) == (Channel.SMS, "twilio_21610")
        assert current_consent(s, world.patient_id, Channel.EMAIL) is ConsentState.OPTED_IN


def test_sendgrid_400_fails_without_retry(session: Session, fake: FakeProviders) -> None:
    world = make_world(session)
    fake.add_faults("email", [{"status": 400}])
    result = claim_and_send(world.email_id)

    assert result.outcome is Outcome.FAILED
    stored = row(world.email_id)
    assert stored.status is MessageStatus.FAILED and stored.error_code == "400"
    assert stored.next_attempt_at is None
    tick_at(SEND_AT + timedelta(hours=1))
    assert row(world.email_id).status is MessageStatus.FAILED
    assert len(fake.email_requests()) == 1


def test_a_template_error_fails_the_message_naming_the_template(session: Session, fake: FakeProviders) -> None:
    world = make_world(session)
    session.execute(update(Message).where(Message.id == world.sms_id).values(template="nope"))
    session.commit()
    result = claim_and_send(world.sms_id)

    assert result.outcome is Outcome.FAILED
    stored = row(world.sms_id)
    assert stored.error_code == "template" and "sms/nope.txt" in (stored.status_reason or "")
    assert fake.sms_requests() == []


def test_a_configuration_error_stops_loudly_and_puts_the_row_back_in_queued(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGAGE_SMS_PROVIDER", "twilio")  # but no credentials
    get_settings.cache_clear()
    reset_providers()
    world = make_world(session)
    with clock.frozen(SEND_AT):
        claim_due()
        with pytest.raises(ConfigurationError):
            send_one(world.sms_id)
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.QUEUED and stored.attempts == 0


@pytest.mark.parametrize(
    ("kind", "setting", "fault", "expected"),
    [
        ("sms", ("TWILIO_AUTH_TOKEN", "revoked-token"), None, "code 20003"),
        ("sms", None, {"status": 404}, "HTTP 404"),
        ("email", ("SENDGRID_API_KEY", "SG.revoked"), None, "HTTP 401"),
    ],
)
def test_an_account_level_refusal_stops_loudly_and_puts_the_row_back_in_queued(
    session: Session,
    fake: FakeProviders,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    setting: tuple[str, str] | None,
    fault: dict[str, int] | None,
    expected: str,
) -> None:
    if setting is not None:
        monkeypatch.setenv(*setting)
        get_settings.cache_clear()
        reset_providers()
    if fault is not None:
        fake.add_faults(kind, [fault])
    world = make_world(session)
    message_id = world.sms_id if kind == "sms" else world.email_id
    with clock.frozen(SEND_AT):
        claim_due()
        with pytest.raises(ConfigurationError, match=expected):
            send_one(message_id)
    stored = row(message_id)
    assert stored.status is MessageStatus.QUEUED and stored.attempts == 0 and stored.handed_at is None
    assert stored.status_reason is None and stored.error_code is None  # not the message's fault
    assert fake.count()[kind] == 0  # nothing accepted (a refused credential is not even recorded)


# --- send-time checks ----------------------------------------------------------------------------


def test_a_queued_message_of_a_cancelled_appointment_is_cancelled_at_send_time(
    session: Session, fake: FakeProviders
) -> None:
    world = make_world(session)
    with clock.frozen(SEND_AT):
        claim_due()
        session.execute(
            update(Appointment).where(Appointment.id == world.appointment_id).values(status=AppointmentStatus.CANCELLED)
        )
        session.commit()
        result = send_one(world.sms_id)
    assert result.outcome is Outcome.CANCELLED
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.CANCELLED and stored.status_reason == "appointment cancelled"
    assert fake.sms_requests() == []


def test_a_queued_reminder_moves_with_its_appointment(session: Session, fake: FakeProviders) -> None:
    world = make_world(session)
    later = APPOINTMENT_AT + timedelta(days=2)
    with clock.frozen(SEND_AT):
        claim_due()
        move_appointment(
            session, world.appointment_id, later, actor="test"
        )  # staff move it; the queued row is history to reconcile
        session.commit()
        result = send_one(world.sms_id)
    assert result.outcome is Outcome.DEFERRED
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.SCHEDULED and stored.due_at == later - timedelta(hours=24)
    assert stored.attempts == 0
    assert fake.sms_requests() == []
    assert tick_at(later - timedelta(hours=24))["sent"] == 1
    assert "Friday, June 14" in fake.sms_requests()[0]["body"]


def test_an_opted_out_patient_is_skipped(session: Session, fake: FakeProviders) -> None:
    world = make_world(session)
    with clock.frozen(SEND_AT):
        claim_due()
        record_consent(session, world.patient_id, Channel.SMS, ConsentState.OPTED_OUT, source="sms_keyword")
        session.commit()
        sms = send_one(world.sms_id)
        email = send_one(world.email_id)
    assert sms.outcome is Outcome.SKIPPED and sms.reason == "opted out of sms"
    assert row(world.sms_id).status is MessageStatus.SKIPPED
    assert email.outcome is Outcome.SENT  # consent is per channel
    assert fake.sms_requests() == [] and len(fake.email_requests()) == 1


def test_in_quiet_hours_the_message_waits_for_the_morning(session: Session, fake: FakeProviders) -> None:
    world = make_world(session)
    late_evening = datetime(2030, 6, 12, 2, 30, tzinfo=UTC)  # 22:30 in New York, the worker was down
    morning = datetime(2030, 6, 12, 12, 0, tzinfo=UTC)  # 08:00 in New York
    result = claim_and_send(world.sms_id, at=late_evening)

    assert result.outcome is Outcome.DEFERRED and result.reason == "quiet hours"
    assert result.delay == (morning - late_evening).total_seconds()
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.SCHEDULED and stored.next_attempt_at == morning
    assert fake.sms_requests() == []
    tick_at(morning - timedelta(minutes=1))
    assert row(world.sms_id).status is MessageStatus.SCHEDULED and fake.sms_requests() == []
    tick_at(morning)
    assert row(world.sms_id).status is MessageStatus.SENT
    assert len(fake.sms_requests()) == 1


def test_a_reminder_whose_appointment_has_begun_is_skipped(session: Session, fake: FakeProviders) -> None:
    world = make_world(session)
    result = claim_and_send(world.sms_id, at=APPOINTMENT_AT + timedelta(minutes=5))
    assert result.outcome is Outcome.SKIPPED and "appointment has begun" in (result.reason or "")
    assert fake.sms_requests() == []


def test_a_patient_without_a_phone_is_skipped(session: Session, fake: FakeProviders) -> None:
    world = make_world(session)
    session.execute(update(Patient).where(Patient.id == world.patient_id).values(phone=None))
    session.commit()
    assert claim_and_send(world.sms_id).reason == "no phone number"
    assert row(world.sms_id).status is MessageStatus.SKIPPED


def test_a_stop_that_arrives_while_waiting_for_the_rate_limit_stops_the_sms(
    session: Session, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(session)
    waited: list[Channel] = []

    def stop_arrives_meanwhile(channel: Channel, provider_name: str) -> None:
        waited.append(channel)
        with session_scope() as webhook:  # the inbound STOP, in its own transaction, during the wait
            record_consent(webhook, world.patient_id, Channel.SMS, ConsentState.OPTED_OUT, source="sms_keyword")

    monkeypatch.setattr(send, "_wait_for_slot", stop_arrives_meanwhile)
    result = claim_and_send(world.sms_id)

    assert waited == [Channel.SMS]
    assert result.outcome is Outcome.SKIPPED and result.reason == "opted out of sms"
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.SKIPPED and stored.attempts == 0 and stored.handed_at is None
    assert fake.sms_requests() == []


def test_a_row_moved_later_after_it_was_claimed_goes_back_unchanged_and_is_not_sent_early(
    session: Session, fake: FakeProviders
) -> None:
    world = make_world(session)
    later = APPOINTMENT_AT + timedelta(days=2)
    new_due = later - timedelta(hours=24)
    with clock.frozen(SEND_AT):
        assert world.sms_id in claim_due()
    # A reconcile that read the row while it was still scheduled writes the move after the claim.
    session.execute(
        update(Appointment)
        .where(Appointment.id == world.appointment_id)
        .values(start_at=later, end_at=later + timedelta(minutes=45))
    )
    session.execute(update(Message).where(Message.id == world.sms_id).values(due_at=new_due))
    session.commit()
    with clock.frozen(SEND_AT):
        result = send_one(world.sms_id)

    assert result.outcome is Outcome.DEFERRED and result.delay == (new_due - SEND_AT).total_seconds()
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.SCHEDULED
    assert (stored.due_at, stored.next_attempt_at, stored.attempts) == (new_due, None, 0)
    assert fake.sms_requests() == []
    tick_at(new_due - timedelta(minutes=1))
    assert fake.sms_requests() == []
    assert tick_at(new_due)["sent"] == 1
    [sms] = fake.sms_requests()
    assert "Friday, June 14" in sms["body"]


def test_an_sms_naming_a_condition_fails_at_send_time_and_the_email_still_goes(
    session: Session, fake: FakeProviders
) -> None:
    world = make_world(session)
    session.execute(update(Clinic).values(name="Sciatica Relief Center"))  # goes into every SMS
    session.commit()
    result = claim_and_send(world.sms_id)

    assert result.outcome is Outcome.FAILED
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.FAILED and stored.error_code == "content"
    reason = stored.status_reason or ""
    assert reason.startswith("sms-condition-word:") and "'sciatica'" in reason
    assert FIRST_NAME not in reason and "see you" not in reason and "Relief Center" not in reason
    assert fake.sms_requests() == []
    with clock.frozen(SEND_AT):  # an email is not shown on a lock screen, and must name the clinic
        assert send_one(world.email_id).outcome is Outcome.SENT
    tick_at(SEND_AT + timedelta(days=1))
    assert fake.sms_requests() == [] and row(world.sms_id).status is MessageStatus.FAILED


def test_condition_words_match_in_any_case_also_inside_longer_words() -> None:
    words = ["sciatica", "dry needling", "needle", "condition"]
    assert condition_words_in("See you at Sciatica Relief Center.", words) == ["sciatica"]
    assert condition_words_in("Your DRY\nneedling visit", words) == ["dry needling", "needle"]
    assert condition_words_in("Hola, CIÁTICA clínica", words + ["ciática"]) == ["ciática"]
    # The same rule as ``engage templates check``: a longer word still names the condition.
    assert condition_words_in("Conditioning Gym: sciaticas", words) == ["sciatica", "condition"]
    assert condition_words_in("Preconditioned haystack, aneedle", words) == ["dry needling", "needle", "condition"]
    assert condition_words_in("Riverside Physio: see you Wednesday", words) == []


def test_an_sms_naming_the_plans_own_condition_fails_at_send_time(session: Session, fake: FakeProviders) -> None:
    world = make_world(session)
    session.execute(update(TreatmentPlan).values(condition="plantar fasciitis", modality="cupping"))
    session.execute(update(Clinic).values(name="Fasciitis Fixers"))  # not a configured word: the plan's own
    session.commit()
    result = claim_and_send(world.sms_id)

    assert result.outcome is Outcome.FAILED
    assert "'plantar fasciitis'" in (row(world.sms_id).status_reason or "")
    assert fake.sms_requests() == []


def test_an_sms_carries_the_clinics_short_sms_name_not_its_long_name(session: Session, fake: FakeProviders) -> None:
    world = make_world(session)
    session.execute(update(Clinic).values(name="Lycoming Orthopedic & Sports Acupuncture", sms_name="Lycoming Ortho"))
    session.commit()
    result = claim_and_send(world.sms_id)

    assert result.outcome is Outcome.SENT
    (request,) = fake.sms_requests()
    assert "at Lycoming Ortho." in request["body"] and "Acupuncture" not in request["body"]


def test_an_sms_naming_a_plural_of_a_condition_word_fails_at_send_time(session: Session, fake: FakeProviders) -> None:
    world = make_world(session)
    session.execute(update(Clinic).values(name="Fine Needles Studio"))  # "needle" is a configured word
    session.commit()
    result = claim_and_send(world.sms_id)

    assert result.outcome is Outcome.FAILED
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.FAILED and stored.error_code == "content"
    assert (stored.status_reason or "").startswith("sms-condition-word:") and "'needle'" in (stored.status_reason or "")
    assert fake.sms_requests() == []


# --- the reaper ----------------------------------------------------------------------------------


def test_the_reaper_flags_stale_sending_rows_unknown_and_never_resends_them(
    session: Session, fake: FakeProviders
) -> None:
    world = make_world(session)
    with clock.frozen(SEND_AT):
        claim_due()
        taken = outbox_rows.start_sending(world.sms_id, SEND_AT)
        assert taken is not None
        with session_scope() as s:
            assert outbox_rows.hand_over(s, world.sms_id, SEND_AT, taken.attempt)  # then died mid-call
    stale = SEND_AT + timedelta(seconds=get_settings().stale_sending_seconds + 1)
    with clock.frozen(SEND_AT + timedelta(seconds=60)):
        assert reap_stale()["unknown"] == 0  # not stale yet
    with clock.frozen(stale):
        reaped = reap_stale()
    assert reaped["unknown"] == 1
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.UNKNOWN
    assert stored.status_reason == "no answer from provider; check before resending"
    with clock.frozen(stale):
        assert send_one(world.sms_id).outcome is Outcome.NOT_MINE
    tick_at(stale + timedelta(days=1))
    assert fake.sms_requests() == []


def test_the_reaper_returns_stale_queued_rows_to_enqueue_again(session: Session, fake: FakeProviders) -> None:
    world = make_world(session)
    with clock.frozen(SEND_AT):
        claim_due()  # and the broker lost both task messages
    later = SEND_AT + timedelta(seconds=get_settings().stale_queued_seconds + 1)
    with clock.frozen(later):
        reaped = reap_stale()
        assert reaped == {"requeued": 2, "unknown": 0, "failed": 0, "ids": sorted([world.sms_id, world.email_id])}
        assert reap_stale()["requeued"] == 0  # queued_at was refreshed
        assert all(send_one(i).outcome is Outcome.SENT for i in reaped["ids"])
    assert row(world.sms_id).queued_at == later
    assert len(fake.sms_requests(accepted_only=True)) == 1 and len(fake.email_requests(accepted_only=True)) == 1


def test_a_worker_that_died_before_calling_the_provider_is_requeued_and_the_message_goes_once(
    session: Session, fake: FakeProviders
) -> None:
    world = make_world(session)
    with clock.frozen(SEND_AT):
        claim_due()
        assert outbox_rows.start_sending(world.sms_id, SEND_AT)  # a worker took it, then died rendering it
    stale = SEND_AT + timedelta(seconds=get_settings().stale_sending_seconds + 1)
    with clock.frozen(stale):
        reaped = reap_stale()
        assert reaped == {"requeued": 2, "unknown": 0, "failed": 0, "ids": sorted([world.sms_id, world.email_id])}
        stored = row(world.sms_id)
        assert stored.status is MessageStatus.QUEUED and stored.handed_at is None and stored.sending_at is None
        assert [send_one(i).outcome for i in reaped["ids"]] == [Outcome.SENT, Outcome.SENT]
    tick_at(stale + timedelta(days=1))
    assert row(world.sms_id).status is MessageStatus.SENT and row(world.sms_id).attempts == 2
    count = fake.count()
    assert (count["sms"], count["sms_total"]) == (1, 1)


def test_a_message_whose_worker_dies_before_the_call_on_every_attempt_fails(
    session: Session, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGAGE_MAX_ATTEMPTS", "2")
    get_settings.cache_clear()
    world = make_world(session)
    stale = timedelta(seconds=get_settings().stale_sending_seconds + 1)
    with clock.frozen(SEND_AT):
        claim_due()
        assert outbox_rows.start_sending(world.sms_id, SEND_AT)
    with clock.frozen(SEND_AT + stale):
        assert world.sms_id in reap_stale()["ids"]
        assert outbox_rows.start_sending(world.sms_id, SEND_AT + stale)  # and that worker dies too
    with clock.frozen(SEND_AT + 2 * stale):
        reaped = reap_stale()
    assert reaped["failed"] == 1 and world.sms_id not in reaped["ids"]
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.FAILED and stored.attempts == 2 and stored.error_code == "internal"
    assert fake.sms_requests() == []


def test_a_worker_whose_row_was_requeued_can_no_longer_hand_it_over(session: Session) -> None:
    world = make_world(session)
    stale = SEND_AT + timedelta(seconds=get_settings().stale_sending_seconds + 1)
    with clock.frozen(SEND_AT):
        claim_due()
        slow = outbox_rows.start_sending(world.sms_id, SEND_AT)
    with clock.frozen(stale):
        reap_stale()
        fresh = outbox_rows.start_sending(world.sms_id, stale)
    assert slow is not None and fresh is not None and fresh.attempt == slow.attempt + 1
    with session_scope() as s:
        assert not outbox_rows.hand_over(s, world.sms_id, stale, slow.attempt)  # the slow worker must not send
        assert not outbox_rows.finish(s, world.sms_id, stale, attempt=slow.attempt, status=MessageStatus.SKIPPED)
        assert outbox_rows.hand_over(s, world.sms_id, stale, fresh.attempt)
    assert row(world.sms_id).status is MessageStatus.SENDING and row(world.sms_id).handed_at == stale


# --- privacy -------------------------------------------------------------------------------------


def test_logs_name_ids_and_codes_never_patient_data(
    session: Session, fake: FakeProviders, caplog: pytest.LogCaptureFixture
) -> None:
    world = make_world(session)
    fake.add_faults("sms", [{"status": 400, "code": 21211}])
    fake.add_faults("email", [{"status": 503}])
    with caplog.at_level(logging.DEBUG, logger="engage"):
        claim_and_send(world.sms_id)
        with clock.frozen(SEND_AT):
            send_one(world.email_id)
        tick_at(SEND_AT + timedelta(hours=2))
    text = caplog.text
    assert str(world.sms_id) in text
    for secret in (PHONE, EMAIL, FIRST_NAME, "López", "see you"):
        assert secret not in text


# --- the shared rate limit and engage's own failures -----------------------------------------------


def test_a_message_waiting_too_long_for_the_rate_limit_goes_back_on_the_schedule(
    session: Session, fake: FakeProviders, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engage.delivery.ratelimit import get_limiter, reset_limiters

    monkeypatch.setenv("ENGAGE_REDIS_URL", redis_url)
    monkeypatch.setenv("ENGAGE_SMS_RATE_PER_SECOND", "0.01")  # one SMS every 100 s, for every worker
    get_settings.cache_clear()
    reset_limiters()
    world = make_world(session)
    get_limiter().reserve("sms:twilio", 0.01)  # another worker just sent one
    try:
        result = claim_and_send(world.sms_id)
    finally:
        reset_limiters()
    assert result.outcome is Outcome.DEFERRED and result.delay is not None and 90 <= result.delay <= 100
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.SCHEDULED and stored.attempts == 0
    assert stored.next_attempt_at is not None and stored.next_attempt_at > SEND_AT + timedelta(seconds=89)
    assert fake.sms_requests() == []


def test_an_unexpected_error_before_the_call_reschedules_the_message_and_is_raised(
    session: Session, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(session)

    def broken(*_args: object, **_kwargs: object) -> dict[str, object]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(send_checks, "message_context", broken)
    with clock.frozen(SEND_AT):
        claim_due()
        with pytest.raises(RuntimeError):
            send_one(world.sms_id)
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.SCHEDULED and stored.attempts == 1
    assert stored.error_code == "internal" and "RuntimeError" in (stored.last_error or "")
    assert stored.next_attempt_at is not None and stored.next_attempt_at > SEND_AT
    monkeypatch.undo()
    counts = tick_at(stored.next_attempt_at)
    assert row(world.sms_id).status is MessageStatus.SENT
    assert counts["error"] == 0 and len(fake.sms_requests()) == 1


def test_when_rescheduling_after_an_error_fails_too_the_reaper_requeues_the_row_and_it_goes_once(
    session: Session, fake: FakeProviders, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy.exc import OperationalError

    world = make_world(session)

    def broken(*_args: object, **_kwargs: object) -> dict[str, object]:
        raise RuntimeError("a bug")

    def database_gone(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("UPDATE message", {}, Exception("server closed the connection"))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(send_checks, "message_context", broken)
        patch.setattr(send, "_provider_failed", database_gone)
        with clock.frozen(SEND_AT), caplog.at_level(logging.ERROR, logger="engage"):
            claim_due()
            with pytest.raises(RuntimeError):
                send_one(world.sms_id)
    assert "could not reschedule it either (OperationalError)" in caplog.text
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.SENDING and stored.handed_at is None

    counts = tick_at(SEND_AT + timedelta(seconds=get_settings().stale_sending_seconds + 1))
    assert counts["requeued"] == 2 and counts["sent"] == 2 and counts["unknown"] == 0
    assert row(world.sms_id).status is MessageStatus.SENT
    count = fake.count()
    assert (count["sms"], count["sms_total"]) == (1, 1)


def test_the_providers_answer_is_stored_even_when_the_first_commit_fails(
    session: Session, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    world = make_world(session)
    real = outbox_rows.record_accepted
    calls: list[int] = []

    def flaky(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("UPDATE message", {}, Exception("database is locked"))
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(send, "record_accepted", flaky)
    result = claim_and_send(world.sms_id)
    assert result.outcome is Outcome.SENT and len(calls) == 2
    stored = row(world.sms_id)
    assert stored.status is MessageStatus.SENT and stored.provider_message_id == fake.sms_requests()[0]["sid"]
    assert len(fake.sms_requests()) == 1
