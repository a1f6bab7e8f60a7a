"""Enrolment and reconciling against a real database (SQLite and PostgreSQL, migrated by Alembic)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engage.clock import frozen
from engage.conversation.consent import reachability, record_consent
from engage.delivery.send_checks import send_time_check
from engage.errors import InvalidInput, NotFound
from engage.records import clinics, patients, plans
from engage.records.models import (
    Appointment,
    AppointmentStatus,
    Channel,
    ConsentState,
    Enrollment,
    Message,
    MessageStatus,
    Patient,
)
from engage.schedule import appointments, enrollments
from engage.schedule.planning import FREQUENCY_CAP, EnrollmentFacts, plan_messages
from engage.schedule.reconcile import (
    appointment_facts,
    plan_facts,
    policy_for,
    reconcile_enrollment,
    reconcile_patient,
    reconcile_plan,
)
from engage.schedule.sequences import get_sequence

UTC = timezone.utc
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PLANNED_AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SEQ = "dry-needling-sciatica"


#: What the shipped sequence plans for six weekly sessions without exercises picked: booking confirmation,
#: what to expect, 6 reminders, 2 aftercare, 1 pain prompt before the 4th, the final prompt, end of plan.
PLANNED = 13
#: Of those, due in the first week (booking, what to expect, the first reminder and aftercare).
FIRST_WEEK = 4


def setup_plan(
    session: Session,
    *,
    phone: str | None = "+12025550123",
    email: str | None = "pat@example.com",
    first: str = "2026-12-01T09:00",
    sessions: int = 6,
    capped: bool = False,
) -> tuple[Patient, Any]:
    clinic = clinics.create_clinic(
        session,
        name="Clinic",
        timezone="America/New_York",
        address="1 Main St",
        email="clinic@example.com",
        actor="test",
    )
    if not capped:  # these tests are about reconciling; the caps have their own (tests/schedule/test_caps.py)
        clinic.sms_per_day = clinic.sms_per_week = 99
    patient = patients.add_patient(
        session, clinic_id=clinic.id, first_name="Pat", last_name="Doe", email=email, phone=phone, actor="test"
    ).patient
    with frozen(PLANNED_AT):  # booked well before the first session, whatever time the test then runs at
        plan = plans.create_plan(
            session,
            patient_id=patient.id,
            condition="sciatica",
            modality="dry needling",
            first=first,
            sessions=sessions,
            every=timedelta(days=7),
            actor="test",
        )
    return patient, plan


WELCOME = ("welcome", "patient")  # the first enrollment's welcome SMS (engage.schedule.welcome): not planned


def rows(session: Session, enrollment_id: int) -> dict[tuple[str, str], Message]:
    session.expire_all()
    found = session.scalars(select(Message).where(Message.enrollment_id == enrollment_id))
    return {(m.step_key, m.occurrence): m for m in found}


def from_scratch(session: Session, enrollment: Enrollment) -> dict[tuple[str, str], datetime]:
    """Desired due times as planning from nothing would give them."""
    plan = enrollment.plan
    appts = session.scalars(select(Appointment).where(Appointment.plan_id == plan.id)).all()
    desired = plan_messages(
        plan_facts(plan),
        [appointment_facts(a) for a in appts],
        get_sequence(SEQ),
        policy_for(enrollment.patient, enrollment.patient.clinic),
        EnrollmentFacts(enrollment.id, enrollment.created_at),
    )
    return {m.key: m.due_at for m in desired}


def test_enrolment_writes_the_planned_messages(session: Session) -> None:
    with frozen(NOW):
        patient, plan = setup_plan(session)
        enrollment, result = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        session.commit()
        stored = rows(session, enrollment.id)
        assert result.inserted == len(stored) == PLANNED + 1  # and the welcome SMS, due when quiet hours end
        assert stored.pop(WELCOME).due_at == datetime(2026, 11, 20, 13, 0, tzinfo=UTC)  # 07:00 -> 08:00 New York
        assert {k: m.due_at for k, m in stored.items()} == from_scratch(session, enrollment)
        assert {m.status for m in stored.values()} == {MessageStatus.SCHEDULED}
        aftercare = stored[("aftercare", f"appt:{plan.appointments[0].id}")]
        assert (aftercare.context["session_number"], aftercare.channel, aftercare.template, aftercare.patient_id) == (
            1,
            Channel.SMS,
            "aftercare",
            patient.id,
        )
        assert aftercare.due_at == plan.appointments[0].end_at + timedelta(hours=1)
        assert stored[("visit-reminder", f"appt:{plan.appointments[2].id}")].context["session_number"] == 3


def test_reconcile_twice_changes_nothing(session: Session) -> None:
    with frozen(NOW):
        patient, plan = setup_plan(session)
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        before = {k: (m.id, m.due_at, m.status, m.updated_at) for k, m in rows(session, enrollment.id).items()}
        result = reconcile_plan(session, plan.id)
        assert result.changed == 0 and result.unchanged == PLANNED + 1  # and the welcome
        assert {k: (m.id, m.due_at, m.status, m.updated_at) for k, m in rows(session, enrollment.id).items()} == before


def test_reminder_moves_when_appointment_is_rescheduled_and_sent_ones_stay(session: Session) -> None:
    with frozen(NOW):
        patient, plan = setup_plan(session)
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        second = plan.appointments[1]
        key = ("visit-reminder", f"appt:{second.id}")
        aftercare_key = ("aftercare", f"appt:{second.id}")
        before = rows(session, enrollment.id)
        sent_at = before[aftercare_key].due_at
        session.execute(update(Message).where(Message.id == before[aftercare_key].id).values(status=MessageStatus.SENT))
        appointments.move_appointment(session, second.id, "2026-12-10T14:00", actor="test")
        after = rows(session, enrollment.id)
        assert after[key].id == before[key].id  # same row, same occurrence key
        assert after[key].due_at == datetime(2026, 12, 9, 19, 0, tzinfo=UTC)  # 14:00 EST the day before
        assert after[key].status is MessageStatus.SCHEDULED
        assert (after[aftercare_key].status, after[aftercare_key].due_at) == (MessageStatus.SENT, sent_at)


def test_cancelled_appointment_cancels_its_pending_messages_and_revives_if_rebooked(session: Session) -> None:
    with frozen(NOW):
        patient, plan = setup_plan(session)
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        third = plan.appointments[2]
        appointments.set_appointment_status(session, third.id, AppointmentStatus.CANCELLED, actor="test")
        after = rows(session, enrollment.id)
        mine = [m for m in after.values() if m.appointment_id == third.id]
        assert mine
        assert {(m.status, m.status_reason) for m in mine} == {(MessageStatus.CANCELLED, "appointment cancelled")}
        # The 3rd-session reassessment passes to the new 3rd session (the 4th appointment).
        assert after[("reassessment", f"appt:{plan.appointments[3].id}")].status is MessageStatus.SCHEDULED

        session.execute(update(Appointment).where(Appointment.id == third.id).values(status=AppointmentStatus.BOOKED))
        result = reconcile_plan(session, plan.id)
        assert result.revived == len(mine)
        assert all(
            m.status is MessageStatus.SCHEDULED
            for m in rows(session, enrollment.id).values()
            if m.appointment_id == third.id
        )


def test_no_show_drops_its_aftercare(session: Session) -> None:
    with frozen(NOW):
        patient, plan = setup_plan(session)
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        first = plan.appointments[0]
    with frozen(first.start_at + timedelta(minutes=30)):
        appointments.set_appointment_status(session, first.id, AppointmentStatus.NO_SHOW, actor="test")
        after = rows(session, enrollment.id)
        aftercare = after[("aftercare", f"appt:{first.id}")]
        assert (aftercare.status, aftercare.status_reason) == (MessageStatus.CANCELLED, "appointment no-show")
        # ... and gets a follow-up the same day, which the send-time check lets go.
        follow_up = after[("no-show-follow-up", f"noshow:{first.id}")]
        assert follow_up.status is MessageStatus.SCHEDULED and follow_up.due_at == first.end_at + timedelta(hours=1)
        session.commit()
    session.execute(update(Message).where(Message.id == follow_up.id).values(plan_version=None))  # re-plan
    session.commit()
    with frozen(follow_up.due_at):
        assert send_time_check(session, session.get_one(Message, follow_up.id), follow_up.due_at) is None


def test_patient_without_phone_gets_skipped_sms_then_revived_when_a_phone_is_added(session: Session) -> None:
    with frozen(NOW):
        patient, plan = setup_plan(session, phone=None)
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        stored = rows(session, enrollment.id).values()
        sms = [m for m in stored if m.channel is Channel.SMS]
        assert {(m.status, m.status_reason) for m in sms} == {(MessageStatus.SKIPPED, "no phone number")}
        # The reassessment goes by email instead (the step says or_email); what-to-expect is email anyway.
        emails = sorted(
            m.step_key for m in stored if m.channel is Channel.EMAIL and m.status is MessageStatus.SCHEDULED
        )
        assert emails == [
            "aftercare",
            "aftercare",
            "end-of-plan",
            "final-reassessment",
            "reassessment",
            "what-to-expect",
        ]

        patient.phone = "+12025550123"
        result = reconcile_enrollment(session, enrollment.id)
        assert result.revived == len(sms)
        after = rows(session, enrollment.id).values()
        assert {m.status for m in after} == {MessageStatus.SCHEDULED}
        assert {m.channel for m in after if m.step_key == "reassessment"} == {Channel.SMS}


def test_opt_out_cancels_and_opting_back_in_revives_future_messages(session: Session) -> None:
    with frozen(NOW):
        patient, plan = setup_plan(session)
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        record_consent(session, patient.id, Channel.SMS, ConsentState.OPTED_OUT, "sms_keyword")
        # Still opted out: no text comes back, but what may go by email (aftercare, pain prompts) now does.
        assert reconcile_plan(session, plan.id).revived == 4
        after = rows(session, enrollment.id).values()
        assert {m.status for m in after if m.channel is Channel.SMS} == {MessageStatus.CANCELLED}
        assert sorted(m.step_key for m in after if m.step_key in ("aftercare", "reassessment")) == [
            "aftercare",
            "aftercare",
            "reassessment",
        ]
        assert {m.channel for m in after if m.step_key in ("aftercare", "reassessment")} == {Channel.EMAIL}
        assert reconcile_plan(session, plan.id).changed == 0
    later = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)
    with frozen(later):
        record_consent(session, patient.id, Channel.SMS, ConsentState.OPTED_IN, "sms_keyword")
        assert reconcile_patient(session, patient.id).revived > 0
        sms = [m for m in rows(session, enrollment.id).values() if m.channel is Channel.SMS]
        assert {m.status for m in sms if m.due_at > later} == {MessageStatus.SCHEDULED}
        # (what went by email while texts were off stays as it was)
        assert {m.status for m in sms if m.due_at <= later and m.step_key not in ("aftercare", "reassessment")} == {
            MessageStatus.CANCELLED
        }


def test_pause_resume_cancel(session: Session) -> None:
    with frozen(NOW):
        patient, plan = setup_plan(session)
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        paused, result = enrollments.pause(session, enrollment.id, actor="test")
        assert paused.status.value == "paused" and result.cancelled == PLANNED + 1  # and the welcome
        assert {(m.status, m.status_reason) for m in rows(session, enrollment.id).values()} == {
            (MessageStatus.CANCELLED, "paused")
        }
        assert enrollments.pause(session, enrollment.id, actor="test")[1].changed == 0
    with frozen(datetime(2026, 12, 5, 12, 0, tzinfo=UTC)):  # the first week passed while paused
        resumed, result = enrollments.resume(session, enrollment.id, actor="test")
        # The first week's texts stay cancelled; the welcome comes back, due at once.
        assert resumed.status.value == "active" and result.revived == PLANNED - FIRST_WEEK + 1
        assert (rows(session, enrollment.id)[WELCOME].status, rows(session, enrollment.id)[WELCOME].due_at) == (
            MessageStatus.SCHEDULED,
            datetime(2026, 12, 5, 12, 0, tzinfo=UTC),
        )
        cancelled, result = enrollments.cancel(session, enrollment.id, actor="test")
        assert cancelled.status.value == "cancelled" and result.cancelled == PLANNED - FIRST_WEEK + 1
        reasons = {m.status_reason for m in rows(session, enrollment.id).values()}
        assert reasons == {"paused", "enrollment cancelled"}
        with pytest.raises(InvalidInput, match="cancelled; it cannot become active"):
            enrollments.resume(session, enrollment.id, actor="test")
        # A new enrolment is allowed once the old one is cancelled.
        again, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        assert again.id != enrollment.id


def test_late_enrolment_skips_what_was_already_due(session: Session) -> None:
    with frozen(datetime(2026, 12, 3, 12, 0, tzinfo=UTC)):  # after the first session
        patient, plan = setup_plan(session)
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        stored = rows(session, enrollment.id)
        first = plan.appointments[0].id
        assert stored[("what-to-expect", f"appt:{first}")].status_reason == "due before enrolment"
        second = plan.appointments[1].id
        assert stored[("aftercare", f"appt:{first}")].status is MessageStatus.SKIPPED
        assert stored[("aftercare", f"appt:{second}")].status is MessageStatus.SCHEDULED


def test_late_enrolment_still_sends_what_to_expect_when_the_visit_is_far_enough_away(session: Session) -> None:
    enrolled = datetime(2026, 11, 30, 15, 30, 20, tzinfo=UTC)  # 10:30 New York, the day before a 09:00 visit
    with frozen(enrolled):
        patient, plan = setup_plan(session)
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        stored = rows(session, enrollment.id)
    first = plan.appointments[0].id
    expect = stored[("what-to-expect", f"appt:{first}")]
    reminder = stored[("visit-reminder", f"appt:{first}")]
    # The booking confirmation takes 10:31 (with the welcome); the other two follow a minute apart.
    assert expect.status is MessageStatus.SCHEDULED and expect.due_at == datetime(2026, 11, 30, 15, 32, tzinfo=UTC)
    assert reminder.status is MessageStatus.SCHEDULED and reminder.due_at == expect.due_at + timedelta(minutes=1)

    with frozen(enrolled + timedelta(hours=5)):  # re-planning later gives the same time: nothing moves
        assert not reconcile_enrollment(session, enrollment.id).changed


def test_late_enrolment_in_quiet_hours_catches_up_at_the_next_allowed_minute(session: Session) -> None:
    enrolled = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # 22:00 New York, the evening before an 09:00 visit
    with frozen(enrolled):
        patient, plan = setup_plan(session, first="2026-12-01T12:00")
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        stored = rows(session, enrollment.id)
    first = plan.appointments[0].id
    # 08:00 is the booking confirmation's (with the welcome): what to expect comes a minute later.
    assert stored[("what-to-expect", f"appt:{first}")].due_at == datetime(2026, 12, 1, 13, 1, tzinfo=UTC)


def test_late_enrolment_just_before_the_visit_skips_the_pre_visit_messages(session: Session) -> None:
    with frozen(datetime(2026, 12, 1, 13, 30, tzinfo=UTC)):  # 08:30 New York, the visit is at 09:00
        patient, plan = setup_plan(session)
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        stored = rows(session, enrollment.id)
    first = plan.appointments[0].id
    for step in ("what-to-expect", "visit-reminder"):
        assert (stored[(step, f"appt:{first}")].status, stored[(step, f"appt:{first}")].status_reason) == (
            MessageStatus.SKIPPED,
            "due before enrolment",
        )


def test_moving_an_appointment_into_the_past_skips_rather_than_sends_late(session: Session) -> None:
    with frozen(NOW - timedelta(days=3)):
        patient, plan = setup_plan(session)
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
    with frozen(NOW):
        first = plan.appointments[0]
        appointments.move_appointment(
            session, first.id, "2026-11-20T13:00", actor="test"
        )  # later today: reminder due yesterday
        reminder = rows(session, enrollment.id)[("visit-reminder", f"appt:{first.id}")]
        assert (reminder.status, reminder.status_reason) == (MessageStatus.SKIPPED, "moved into the past")


def test_enrolment_errors(session: Session) -> None:
    with frozen(NOW):
        patient, plan = setup_plan(session)
        other, _ = setup_plan(session, email="other@example.com")
        with pytest.raises(NotFound, match="known: .*dry-needling-sciatica"):
            enrollments.enroll(session, patient.id, plan.id, "nope", enrolled_by="test")
        with pytest.raises(NotFound, match=f"no treatment plan with id {plan.id}"):  # another clinic's: as if absent
            enrollments.enroll(session, other.id, plan.id, SEQ, enrolled_by="test")
        with pytest.raises(NotFound, match="no patient with id 999"):
            enrollments.enroll(session, 999, plan.id, SEQ, enrolled_by="test")
        enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        with pytest.raises(InvalidInput, match="already enrolled"):
            enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        with pytest.raises(NotFound):
            enrollments.timeline(session, 999)


def test_timeline_is_sorted_and_shows_local_time(session: Session) -> None:
    with frozen(NOW):
        patient, plan = setup_plan(session, phone=None)
        enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        items = enrollments.timeline(session, patient.id)
    assert len(items) == PLANNED
    assert [i["due_at"] for i in items] == sorted(i["due_at"] for i in items)
    assert (items[0]["step"], items[0]["reason"]) == ("booking-confirmation", "no phone number")
    first = items[1]
    keys = {"id", "step", "channel", "template", "due_at", "local_due_at", "status", "appointment_id", "reason"}
    assert keys <= set(first)
    assert (first["step"], first["due_at"], first["local_due_at"]) == (
        "what-to-expect",
        "2026-11-29T14:00:00+00:00",
        "2026-11-29T09:00:00-05:00",
    )
    assert items[2]["reason"] == "no phone number"


def test_bulk_reachability_agrees_with_consent(session: Session) -> None:
    with frozen(NOW):
        a, _ = setup_plan(session, phone=None)
        b, _ = setup_plan(session, email=None)
        c, _ = setup_plan(session, email="c@example.com")
        c.phone_invalid = True
        record_consent(session, b.id, Channel.SMS, ConsentState.OPTED_OUT, "sms_keyword")
        record_consent(session, a.id, Channel.EMAIL, ConsentState.OPTED_OUT, "unsubscribe_link")
        record_consent(session, a.id, Channel.EMAIL, ConsentState.OPTED_IN, "staff")
        bulk = enrollments.reach_many(session, [a, b, c])
        for patient in (a, b, c):
            for channel in Channel:
                assert bulk[patient.id][channel] == reachability(session, patient, channel)


# --- the reconcile law: after any moves and cancellations, pending rows = planning from scratch ---

# (No-shows are marked once a visit has started, after NOW here; test_no_show_* covers them.)
operations = st.lists(
    st.tuples(st.sampled_from(["move", "cancel", "send"]), st.integers(0, 5), st.integers(-72, 72)),
    max_size=6,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_reconcile_after_any_moves_and_cancellations_equals_planning_from_scratch(
    session: Session, ops: list[tuple[str, int, int]]
) -> None:
    with frozen(NOW):
        patient, plan = setup_plan(session, email=None)
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        booked = list(plan.appointments)
        sent: set[tuple[str, str]] = set()
        for op, index, hours in ops:
            appointment = booked[index]
            if appointment.status is not AppointmentStatus.BOOKED:
                continue
            if op == "move":
                appointments.move_appointment(
                    session, appointment.id, appointment.start_at + timedelta(hours=hours), actor="test"
                )
            elif op == "cancel":
                appointments.set_appointment_status(session, appointment.id, AppointmentStatus.CANCELLED, actor="test")
            else:  # the dispatcher sent one of this appointment's pending messages
                pending = [
                    m
                    for m in rows(session, enrollment.id).values()
                    if m.appointment_id == appointment.id and m.status is MessageStatus.SCHEDULED
                ]
                if pending:
                    sent_now = update(Message).where(Message.id == pending[0].id).values(status=MessageStatus.SENT)
                    session.execute(sent_now)
                    sent.add((pending[0].step_key, pending[0].occurrence))
        session.flush()
        stored = rows(session, enrollment.id)
        # Appointment moves and cancellations never touch the welcome SMS.
        assert stored.pop(WELCOME).status is MessageStatus.SCHEDULED
        scheduled = {k: m.due_at for k, m in stored.items() if m.status is MessageStatus.SCHEDULED}
        # No email address: the email steps are skipped, so only SMS steps can be pending.
        email_steps = {step.key for step in get_sequence(SEQ).steps if step.channel == "email"}
        expected = {
            k: due for k, due in from_scratch(session, enrollment).items() if k not in sent and k[0] not in email_steps
        }
        assert scheduled == expected
        assert all(stored[k].status is MessageStatus.SENT for k in sent)
        assert reconcile_plan(session, plan.id).changed == 0  # idempotent after any history
    session.rollback()


def test_the_database_refuses_a_second_live_enrollment_of_a_plan_in_a_sequence(session: Session) -> None:
    """The check in ``enroll`` can race with another enrolment; the partial unique index cannot."""
    from sqlalchemy.exc import IntegrityError

    patient, plan = setup_plan(session)
    with frozen(NOW):
        first, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
    session.commit()
    session.add(Enrollment(patient_id=patient.id, plan_id=plan.id, sequence_key=SEQ))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()

    with frozen(NOW):
        enrollments.cancel(session, first.id, actor="test")
        session.commit()
        again, _ = enrollments.enroll(
            session, patient.id, plan.id, SEQ, enrolled_by="test"
        )  # a cancelled one does not block
    assert again.id != first.id


# --- reconcile never overwrites a row a dispatcher has taken (review finding) ---


def test_a_row_claimed_since_the_session_read_it_is_history_and_reconcile_leaves_it(session: Session) -> None:
    """The session still holds the rows as ``scheduled`` (read earlier, ``expire_on_commit=False``) when
    ``claim_due`` takes two of them in another connection; cancelling and moving their appointments must
    then leave those ``queued`` rows exactly as the dispatcher left them."""
    from engage.delivery.claim import claim_due

    with frozen(NOW):
        patient, plan = setup_plan(session)
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        first, second = plan.appointments[0], plan.appointments[1]
        stale = rows(session, enrollment.id)  # loaded into the session as scheduled
        what_to_expect = stale[("what-to-expect", f"appt:{first.id}")]
        reminder = stale[("visit-reminder", f"appt:{second.id}")]
        reminder_due = reminder.due_at
        session.commit()
    # The earliest row (what-to-expect), then the second visit's reminder, as a dispatcher would claim them.
    assert claim_due(limit=1, now=what_to_expect.due_at, channel=Channel.EMAIL) == [what_to_expect.id]
    # ... and the second as if by another process too: the session's copy is not told.
    session.execute(
        update(Message)
        .where(Message.id == reminder.id)
        .values(status=MessageStatus.QUEUED)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    assert what_to_expect.status is reminder.status is MessageStatus.SCHEDULED  # the session's copies are stale

    with frozen(NOW):
        appointments.set_appointment_status(session, first.id, AppointmentStatus.CANCELLED, actor="test")
        appointments.move_appointment(session, second.id, "2026-12-10T14:00", actor="test")
        session.commit()
    after = rows(session, enrollment.id)
    taken = after[("what-to-expect", f"appt:{first.id}")]
    assert (taken.status, taken.status_reason) == (MessageStatus.QUEUED, None)
    moved_visit = after[("visit-reminder", f"appt:{second.id}")]
    assert (moved_visit.status, moved_visit.due_at) == (MessageStatus.QUEUED, reminder_due)
    # Everything still pending did follow the changes.
    assert after[("aftercare", f"appt:{first.id}")].status is MessageStatus.CANCELLED
    assert after[("aftercare", f"appt:{second.id}")].due_at == datetime(2026, 12, 10, 20, 45, tzinfo=UTC)


def test_reconcile_locks_the_enrollments_rows_so_no_dispatcher_can_claim_them_meanwhile(pg_url: str) -> None:
    """On PostgreSQL reconcile holds ``FOR UPDATE`` locks on every outbox row of the enrollment until its
    transaction ends: ``claim_due`` (``SKIP LOCKED``) passes them by and a ``NOWAIT`` locker is refused."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from engage.db import make_engine, session_factory
    from engage.delivery.claim import claim_due

    session = session_factory()()
    other = make_engine(pg_url)
    try:
        with frozen(NOW):
            patient, plan = setup_plan(session)
            enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
            session.commit()
            assert reconcile_enrollment(session, enrollment.id).changed == 0  # nothing to write, still locked
        ids = [m.id for m in rows(session, enrollment.id).values()]
        with frozen(NOW):
            reconcile_enrollment(session, enrollment.id)
        with other.connect() as conn, pytest.raises(OperationalError, match="could not obtain lock"):
            conn.execute(text("SELECT id FROM message WHERE id = :id FOR UPDATE NOWAIT"), {"id": ids[0]})
        assert claim_due(now=datetime(2027, 6, 1, tzinfo=UTC)) == []  # all due by then, all locked
        session.rollback()
        assert len(claim_due(now=datetime(2027, 6, 1, tzinfo=UTC))) == len(ids)  # the locks went with it
    finally:
        session.close()
        other.dispose()


# --- a moved or revived row starts afresh (review finding) ---


def test_a_row_waiting_for_a_retry_that_moves_earlier_is_claimable_at_its_new_time(session: Session) -> None:
    from engage.delivery.claim import claim_due

    with frozen(NOW):
        patient, plan = setup_plan(session)
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        second = plan.appointments[1]
        key = ("visit-reminder", f"appt:{second.id}")
        reminder = rows(session, enrollment.id)[key]
        # A transient provider failure left it scheduled with a retry at 08:00 New York the day after it was due.
        retry_at = datetime(2026, 12, 8, 13, 0, tzinfo=UTC)
        session.execute(
            update(Message)
            .where(Message.id == reminder.id)
            .values(
                next_attempt_at=retry_at,
                attempts=2,
                last_error="provider timeout",
                error_code="timeout",
                status_reason="retrying",
            )
        )
        appointments.move_appointment(session, second.id, "2026-12-05T10:00", actor="test")  # three days earlier
        session.commit()
    moved = rows(session, enrollment.id)[key]
    assert moved.due_at == datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
    assert (
        moved.status,
        moved.next_attempt_at,
        moved.attempts,
        moved.last_error,
        moved.error_code,
        moved.status_reason,
    ) == (MessageStatus.SCHEDULED, None, 0, None, None, None)
    session.commit()  # let the dispatcher's connection write (SQLite)
    assert reminder.id in claim_due(now=moved.due_at)


def test_a_revived_row_forgets_its_earlier_attempts(session: Session) -> None:
    with frozen(NOW):
        patient, plan = setup_plan(session)
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        third = plan.appointments[2]
        key = ("visit-reminder", f"appt:{third.id}")
        appointments.set_appointment_status(session, third.id, AppointmentStatus.CANCELLED, actor="test")
        row_id = rows(session, enrollment.id)[key].id
        session.execute(
            update(Message)
            .where(Message.id == row_id)
            .values(next_attempt_at=datetime(2026, 12, 30, tzinfo=UTC), attempts=3, last_error="busy", error_code="429")
        )
        session.execute(update(Appointment).where(Appointment.id == third.id).values(status=AppointmentStatus.BOOKED))
        assert reconcile_plan(session, plan.id).revived > 0
    revived = rows(session, enrollment.id)[key]
    assert (
        revived.status,
        revived.status_reason,
        revived.next_attempt_at,
        revived.attempts,
        revived.last_error,
        revived.error_code,
    ) == (MessageStatus.SCHEDULED, None, None, 0, None, None)


def test_a_row_that_only_changes_context_keeps_its_retry(session: Session) -> None:
    """Same due time: the pending retry is still the one to honour (no new send, no reset)."""
    with frozen(NOW):
        patient, plan = setup_plan(session)
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        key = ("visit-reminder", f"appt:{plan.appointments[1].id}")
        row_id = rows(session, enrollment.id)[key].id
        retry_at = datetime(2026, 12, 8, 13, 0, tzinfo=UTC)
        session.execute(
            update(Message)
            .where(Message.id == row_id)
            .values(next_attempt_at=retry_at, attempts=1, context={"stale": True})
        )
        assert reconcile_plan(session, plan.id).updated == 1
    kept = rows(session, enrollment.id)[key]
    assert (kept.next_attempt_at, kept.attempts) == (retry_at, 1) and "stale" not in kept.context


def test_a_caught_up_message_is_sent_not_second_guessed_at_send_time(session: Session) -> None:
    """The send-time re-plan must reach the same catch-up time, or it would skip the message as moved."""
    from engage.delivery import dispatch

    enrolled = datetime(2026, 11, 30, 15, 30, 20, tzinfo=UTC)
    with frozen(enrolled):
        patient, plan = setup_plan(session)
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
    session.commit()
    counts = dispatch.tick(datetime(2026, 11, 30, 15, 33, tzinfo=UTC))
    # The booking confirmation (due a minute after) with the welcome, then what to expect and the reminder a
    # minute apart each.
    assert counts["claimed"] == 4 and counts["sent"] == 4
    stored = rows(session, enrollment.id)
    assert stored[("booking-confirmation", "booked:enrollment")].status is MessageStatus.SENT
    first = plan.appointments[0].id
    assert stored[WELCOME].status is MessageStatus.SENT
    assert stored[("what-to-expect", f"appt:{first}")].status is MessageStatus.SENT
    assert stored[("visit-reminder", f"appt:{first}")].status is MessageStatus.SENT


def test_capped_texts_show_on_the_timeline_before_they_happen_and_send_time_agrees(session: Session) -> None:
    with frozen(NOW):
        patient, plan = setup_plan(session, capped=True)
        patient.clinic.sms_per_week = 1  # weekly visits fit the default caps; one a week leaves some out
        enrollment, _ = enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        session.commit()
        stored = rows(session, enrollment.id)
    capped = [m for m in stored.values() if m.status_reason == FREQUENCY_CAP]
    assert capped and {(m.status, m.channel) for m in capped} == {(MessageStatus.SKIPPED, Channel.SMS)}
    # The welcome SMS is outside the caps (it is not counted, and nothing is skipped for it).
    kept = [
        m
        for k, m in stored.items()
        if m.channel is Channel.SMS and m.status is MessageStatus.SCHEDULED and k != WELCOME and k[0] != "aftercare"
    ]  # aftercare is safety advice, outside the caps too
    days = Counter(m.due_at.astimezone(ZoneInfo("America/New_York")).date() for m in kept)
    assert max(days.values()) == 1
    # The send-time check asks the planner again (a row without a current plan_version stamp is re-planned)
    # and gets the same answers.
    session.execute(update(Message).where(Message.enrollment_id == enrollment.id).values(plan_version=None))
    session.commit()
    for message in stored.values():
        with frozen(message.due_at):
            decision = send_time_check(session, session.get_one(Message, message.id), message.due_at)
        if message.status_reason == FREQUENCY_CAP:
            assert decision is not None and decision.reason == FREQUENCY_CAP
        elif message.status is MessageStatus.SCHEDULED:
            assert decision is None or decision.reason != FREQUENCY_CAP
