"""Undo for a cancel or a no-show: the visit is booked again, its reminders are planned again, and a
re-booked visit may not overlap another booked visit of the patient (the error names it, nothing written)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.clock import frozen
from engage.errors import InvalidInput
from engage.records.models import Appointment, AppointmentStatus, AuditEvent, Message, MessageStatus
from engage.schedule import appointments, enrollments
from tests.schedule.test_reconcile import NOW, SEQ, setup_plan


def _pending(session: Session, appointment_id: int) -> set[str]:
    return set(
        session.scalars(
            select(Message.step_key).where(
                Message.appointment_id == appointment_id, Message.status == MessageStatus.SCHEDULED
            )
        )
    )


def test_a_cancelled_visit_booked_again_gets_its_reminders_back_and_the_undo_is_audited(session: Session) -> None:
    with frozen(NOW):
        patient, plan = setup_plan(session)
        enrollments.enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        third = plan.appointments[2]
        before = _pending(session, third.id)
        assert before
        appointments.set_appointment_status(session, third.id, AppointmentStatus.CANCELLED, actor="desk@x")
        assert _pending(session, third.id) == set()

        result = appointments.set_appointment_status(
            session, third.id, AppointmentStatus.BOOKED, actor="desk@x"
        ).messages

        assert third.status is AppointmentStatus.BOOKED
        assert result.revived == len(before) and _pending(session, third.id) == before
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.subject_type == "appointment", AuditEvent.subject_id == third.id)
        ).all()
        assert actions == ["appointment.cancelled", "appointment.booked"]


def test_booking_a_cancelled_visit_again_is_refused_when_another_visit_took_its_time(session: Session) -> None:
    with frozen(NOW):
        patient, plan = setup_plan(session)
        third = plan.appointments[2]
        appointments.set_appointment_status(session, third.id, AppointmentStatus.CANCELLED, actor="test")
        other = appointments.add_appointment(session, plan_id=plan.id, start=third.start_at, actor="test").appointment

        with pytest.raises(InvalidInput, match=f"overlaps appointment {other.id} of the same patient"):
            appointments.set_appointment_status(session, third.id, AppointmentStatus.BOOKED, actor="test")
        assert session.get(Appointment, third.id).status is AppointmentStatus.CANCELLED  # type: ignore[union-attr]


def test_a_no_show_may_be_undone_but_a_completed_visit_is_not_booked_again(session: Session) -> None:
    with frozen(NOW):
        patient, plan = setup_plan(session)
        first = plan.appointments[0]
    with frozen(first.start_at):
        appointments.set_appointment_status(session, first.id, AppointmentStatus.NO_SHOW, actor="test")
        appointments.set_appointment_status(session, first.id, AppointmentStatus.BOOKED, actor="test")
        assert first.status is AppointmentStatus.BOOKED
        appointments.set_appointment_status(session, first.id, AppointmentStatus.COMPLETED, actor="test")
        with pytest.raises(InvalidInput, match="is completed; it cannot become booked"):
            appointments.set_appointment_status(session, first.id, AppointmentStatus.BOOKED, actor="test")
