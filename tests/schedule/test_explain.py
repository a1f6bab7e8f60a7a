"""Plain words for staff: each shipped step described, a change's effect summarised, a preview that writes nothing."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engage.clock import frozen, utcnow
from engage.conversation.consent import record_consent
from engage.records.models import Channel, ConsentState, Enrollment, Message, MessageStatus
from engage.records.plans import create_plan
from engage.schedule.enrollments import enroll
from engage.schedule.explain import describe_result, describe_sequence, preview_enrollment
from engage.schedule.reconcile import ReconcileResult
from engage.schedule.sequences import get_sequence
from tests import seed


def test_shipped_steps_read_as_plain_words() -> None:
    words = dict((step.key, text) for step, text in describe_sequence(get_sequence("dry-needling-sciatica")))
    assert words["visit-reminder"].startswith("SMS 24 h before each session, moved out of quiet hours")
    assert words["what-to-expect"].startswith("Email 48 h before the first session")
    assert words["aftercare"] == (
        "SMS 1 h after each of the first 2 sessions ends, not counted against the frequency caps, "
        "moved later out of quiet hours"
    )
    assert words["stretch"].startswith(
        "SMS at 09:00 local time, 1 day after each of the first 2 sessions ends, only when the practitioner "
        "picked exercises"
    )
    assert words["no-show-follow-up"].startswith("SMS 1 h after a session marked no-show ends")
    assert words["booking-confirmation"].startswith("SMS 1 min after a booking")
    assert words["reassessment"].startswith("SMS at 10:00 local time, 2 days before the session after every 3rd")
    assert words["final-reassessment"].startswith("SMS at 10:00 local time, 3 days after the last session ends")


def test_a_change_is_summarised_in_a_few_words() -> None:
    assert describe_result(ReconcileResult(moved=2, cancelled=1)) == "2 messages moved, 1 cancelled"
    assert describe_result(ReconcileResult(cancelled=1)) == "1 message cancelled"
    assert describe_result(ReconcileResult(unchanged=4)) == "no messages changed"


def test_the_preview_is_what_enrolling_then_plans_and_writes_nothing(session: Session) -> None:
    clinic = seed.clinic(session)
    james = seed.patient(session, clinic.id, "James", "Carter", email="james@example.com")
    james.phone = None  # no phone: every SMS would be skipped, and the preview says so
    first = (utcnow() + timedelta(days=6)).strftime("%Y-%m-%dT10:00")
    plan = create_plan(
        session,
        patient_id=james.id,
        condition="sciatica",
        modality="dry needling",
        first=first,
        sessions=2,
        every=timedelta(days=7),
        actor="test",
    )
    rows = preview_enrollment(session, james, plan, "dry-needling-sciatica")
    assert session.scalar(select(func.count()).select_from(Message)) == 0
    assert session.scalar(select(func.count()).select_from(Enrollment)) == 0
    assert {r.reason for r in rows if r.channel.value == "sms"} == {"no phone number"}
    enroll(session, james.id, plan.id, "dry-needling-sciatica", enrolled_by="test")
    written = session.execute(
        select(Message.step_key, Message.due_at, Message.status).order_by(Message.due_at, Message.step_key)
    )
    assert [(r.step, r.due_at, r.status) for r in rows] == [tuple(w) for w in written]
    assert all(r.local_due_at.utcoffset() is not None for r in rows)
    assert any(r.status is MessageStatus.SCHEDULED for r in rows)


def test_the_preview_shows_the_welcome_sms_that_enrolling_then_plans(session: Session) -> None:
    clinic = seed.clinic(session)
    ana = seed.patient(session, clinic.id, email="ana@example.com")
    record_consent(session, ana.id, Channel.SMS, ConsentState.OPTED_IN, "staff", "asked at the desk")
    first = (utcnow() + timedelta(days=6)).strftime("%Y-%m-%dT10:00")
    plan = create_plan(
        session,
        patient_id=ana.id,
        condition="sciatica",
        modality="dry needling",
        first=first,
        sessions=6,
        every=timedelta(days=7),
        actor="test",
    )
    with frozen(utcnow()):  # one instant: outside quiet hours the welcome is due at it
        rows = preview_enrollment(session, ana, plan, "dry-needling-sciatica")
        assert session.scalar(select(func.count()).select_from(Message)) == 0
        assert [r.step for r in rows].count("welcome") == 1
        _, result = enroll(session, ana.id, plan.id, "dry-needling-sciatica", enrolled_by="test")
    written = session.execute(
        select(Message.step_key, Message.channel, Message.template, Message.due_at, Message.status).order_by(
            Message.due_at, Message.step_key
        )
    )
    assert [(r.step, r.channel, r.template, r.due_at, r.status) for r in rows] == [tuple(w) for w in written]
    assert result.inserted == len(rows)
    # A second plan of the same patient: the welcome is on its way, so neither the preview nor enrolling adds one.
    other = create_plan(
        session,
        patient_id=ana.id,
        condition="neck pain",
        modality="massage",
        first=(utcnow() + timedelta(days=7)).strftime("%Y-%m-%dT10:00"),
        sessions=2,
        every=timedelta(days=7),
        actor="test",
    )
    assert "welcome" not in [r.step for r in preview_enrollment(session, ana, other, "dry-needling-sciatica")]
