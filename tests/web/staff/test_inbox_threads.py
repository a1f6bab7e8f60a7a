"""The inbox as conversations: a thread per patient with their texts and ours, a staff reply that goes through the
outbox and the real send path to the (fake) Twilio exactly once, audited, with its status in the thread; refused,
with the reason, to a patient who opted out; conversational replies are not held by quiet hours, later ones are."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engage import clock
from engage.config import get_settings
from engage.conversation.consent import record_consent
from engage.conversation.inbound import InboundSms, receive_sms
from engage.db import session_scope
from engage.delivery import dispatch
from engage.delivery.providers import reset_providers
from engage.delivery.staff_replies import reply_to_patient
from engage.records.models import AuditEvent, Channel, ConsentState, Message, MessageStatus, Patient
from engage.schedule.reconcile import reconcile_patient
from tests import seed
from tests.fakes.provider_server import FakeProviders
from tests.web.staff.support import HTML, signed_in

ANA_PHONE = "+14155550123"
BO_PHONE = "+14155550188"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProviders]:
    with FakeProviders() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        reset_providers()
        yield server
    reset_providers()


def _clinic_with_texts(at: datetime | None = None) -> dict[str, int]:
    with session_scope() as session:
        clinic = seed.clinic(session)
        seed.staff(session, clinic.id, "desk@clinic.example", "front_desk")
        ana = seed.patient(session, clinic.id, phone=ANA_PHONE)
        bo = seed.patient(session, clinic.id, "Bo", "Lee", phone=BO_PHONE)
        seed.enrolled(session, ana.id)
        with clock.frozen(at or clock.utcnow()):
            receive_sms(
                session,
                InboundSms("SM1", ANA_PHONE, "+14155550100", "Can I bring my own towel?"),
                replan=reconcile_patient,
            )
        record_consent(session, bo.id, Channel.SMS, ConsentState.OPTED_OUT, source="staff", detail="asked at desk")
        return {"ana": ana.id, "bo": bo.id}


def _staff_replies() -> list[Message]:
    with session_scope() as session:
        return list(session.scalars(select(Message).where(Message.step_key == "staff-reply")))


def test_a_reply_goes_out_once_through_the_outbox_audited_and_shows_in_the_thread(
    db_url: str, fake: FakeProviders
) -> None:
    ids = _clinic_with_texts()
    client, csrf = signed_in("desk@clinic.example")
    inbox = client.get("/inbox", headers=HTML).text
    assert 'Inbox <span class="badge">(1)</span>' in inbox and "1 waiting" in inbox
    assert f'href="/inbox/patients/{ids["ana"]}">Ana Ruiz</a>' in inbox and f'href="tel:{ANA_PHONE}"' in inbox
    page = client.get(f"/inbox/patients/{ids['ana']}", headers=HTML).text
    assert "Can I bring my own towel?" in page and "opted in" in page and "English" in page

    form = {"csrf_token": csrf, "body": "Yes, bring one. See you Friday!"}
    answer = client.post(f"/inbox/patients/{ids['ana']}/reply", data=form, headers=HTML)
    client.post(f"/inbox/patients/{ids['ana']}/reply", data=form, headers=HTML)  # a double click
    assert "Reply queued" in answer.text
    [queued] = _staff_replies()
    assert queued.status is MessageStatus.SCHEDULED and queued.enrollment_id is None

    dispatch.tick()
    dispatch.tick()

    # Only the reply's (the welcome SMS goes out too when the clinic's quiet hours are over).
    [request] = [r for r in fake.sms_requests() if r["message_id"] == queued.id]
    assert request["to"] == ANA_PHONE and request["body"].startswith("Back in Motion: Yes, bring one. See you Friday!")
    assert request["message_id"] == queued.id
    [sent] = _staff_replies()
    assert sent.status is MessageStatus.SENT
    with session_scope() as session:
        actor = session.scalar(select(AuditEvent.actor).where(AuditEvent.action == "message.staff_reply"))
    assert actor == "desk@clinic.example"
    thread = client.get(f"/inbox/patients/{ids['ana']}", headers=HTML).text
    assert thread.index("Can I bring my own towel?") < thread.index("Yes, bring one. See you Friday!")
    assert 'desk@clinic.example · <span class="status-sent">sent</span>' in thread


def test_a_reply_to_a_patient_who_opted_out_is_refused_with_the_reason_and_nothing_queued(db_url: str) -> None:
    ids = _clinic_with_texts()
    client, csrf = signed_in("desk@clinic.example")
    page = client.get(f"/inbox/patients/{ids['bo']}", headers=HTML).text
    assert "Bo opted out of SMS: a reply cannot be sent. Call them instead." in page
    answer = client.post(f"/inbox/patients/{ids['bo']}/reply", data={"csrf_token": csrf, "body": "Hi"}, headers=HTML)
    assert "Reply not sent: Bo Lee cannot get an SMS: they opted out of SMS" in answer.text
    empty = client.post(f"/inbox/patients/{ids['ana']}/reply", data={"csrf_token": csrf, "body": " "}, headers=HTML)
    assert "Reply not sent: write the reply first." in empty.text
    assert _staff_replies() == []


def test_a_reply_within_24_hours_of_their_text_is_not_held_by_quiet_hours_but_a_later_one_is(
    db_url: str, fake: FakeProviders
) -> None:
    night = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)  # 23:00 in New York: quiet hours
    ids = _clinic_with_texts(at=night - timedelta(hours=2))
    with clock.frozen(night), session_scope() as session:
        reply_to_patient(session, session.get_one(Patient, ids["ana"]), "Yes, see you Friday", actor="desk")
    with clock.frozen(night):
        dispatch.tick()
    assert [m.status for m in _staff_replies()] == [MessageStatus.SENT]

    two_days_later = night + timedelta(days=2)
    with clock.frozen(two_days_later), session_scope() as session:
        reply_to_patient(session, session.get_one(Patient, ids["ana"]), "Any news?", actor="desk")
    with clock.frozen(two_days_later):
        dispatch.tick()
    held = next(m for m in _staff_replies() if m.context["body"] == "Any news?")
    assert held.status is MessageStatus.SCHEDULED and held.status_reason == "quiet hours"
    assert held.next_attempt_at == datetime(2026, 12, 4, 13, 0, tzinfo=UTC)  # 08:00 in New York
    assert len(fake.sms_requests()) == 1


def test_marking_a_thread_handled_takes_it_out_of_the_waiting_count(db_url: str) -> None:
    ids = _clinic_with_texts()
    client, csrf = signed_in("desk@clinic.example")
    answer = client.post(
        f"/inbox/patients/{ids['ana']}/handled", data={"csrf_token": csrf, "note": "answered"}, headers=HTML
    )
    assert "Thread of Ana Ruiz marked handled." in answer.text and "handled</td>" in answer.text
    assert '<span class="badge">' not in answer.text
    again = client.post(f"/inbox/patients/{ids['ana']}/handled", data={"csrf_token": csrf, "note": "x"}, headers=HTML)
    assert "Thread not changed: nothing in this thread waits for a person." in again.text
