"""Appointment changes (add, move, cancel, complete, no-show) and the re-plan each one causes.

Each function works inside the caller's session, raises ``InvalidInput`` or
``NotFound`` before writing anything, audits the change and reconciles the plan's
messages, so a moved visit's reminders move and a cancelled one's are cancelled.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from engage.errors import InvalidInput
from engage.records import validation
from engage.records.audit import audit
from engage.records.lookup import get
from engage.records.models import Appointment, AppointmentStatus, TreatmentPlan
from engage.schedule.reconcile import ReconcileResult, reconcile_plan


def add_appointment(
    session: Session, *, plan_id: int, start: str | datetime, end: str | datetime | None = None,
    duration: timedelta | None = None, actor: str = "cli",
) -> Appointment:
    """Book one more appointment in a plan; its messages are planned."""
    return add_appointment_replanned(
        session, plan_id=plan_id, start=start, end=end, duration=duration, actor=actor
    )[0]


def add_appointment_replanned(
    session: Session, *, plan_id: int, start: str | datetime, end: str | datetime | None = None,
    duration: timedelta | None = None, actor: str = "cli",
) -> tuple[Appointment, ReconcileResult]:
    """:func:`add_appointment`, also saying what the re-plan did to the messages."""
    plan: TreatmentPlan = get(session, TreatmentPlan, plan_id)
    tz = plan.patient.effective_timezone
    start_at = validation.local_datetime(start, tz)
    if end is not None:
        end_at = validation.local_datetime(end, tz)
    else:
        end_at = start_at + (duration or timedelta(minutes=plan.session_minutes))
    if end_at <= start_at:
        raise InvalidInput("an appointment must end after it starts")
    appointment = Appointment(plan_id=plan.id, start_at=start_at, end_at=end_at, status=AppointmentStatus.BOOKED)
    session.add(appointment)
    session.flush()
    return appointment, _after_appointment_change(session, appointment, actor, "appointment.add")


def move_appointment(session: Session, appointment_id: int, to: str | datetime, actor: str = "cli") -> Appointment:
    """Move a booked appointment, keeping its length; its pending messages move with it."""
    return move_appointment_replanned(session, appointment_id, to, actor)[0]


def move_appointment_replanned(
    session: Session, appointment_id: int, to: str | datetime, actor: str = "cli"
) -> tuple[Appointment, ReconcileResult]:
    """:func:`move_appointment`, also saying what the re-plan did to the messages."""
    appointment: Appointment = get(session, Appointment, appointment_id)
    if appointment.status is not AppointmentStatus.BOOKED:
        raise InvalidInput(f"appointment {appointment_id} is {appointment.status.value}; only booked ones can move")
    length = appointment.end_at - appointment.start_at
    appointment.start_at = validation.local_datetime(to, appointment.plan.patient.effective_timezone)
    appointment.end_at = appointment.start_at + length
    return appointment, _after_appointment_change(session, appointment, actor, "appointment.move")


_ALLOWED = {
    AppointmentStatus.CANCELLED: {AppointmentStatus.BOOKED},
    AppointmentStatus.COMPLETED: {AppointmentStatus.BOOKED, AppointmentStatus.NO_SHOW},
    AppointmentStatus.NO_SHOW: {AppointmentStatus.BOOKED, AppointmentStatus.COMPLETED},
}


def set_appointment_status(
    session: Session, appointment_id: int, status: AppointmentStatus, actor: str = "cli"
) -> Appointment:
    """Cancel, complete or mark a no-show; pending messages follow (a cancelled visit's reminders are cancelled)."""
    return set_appointment_status_replanned(session, appointment_id, status, actor)[0]


def set_appointment_status_replanned(
    session: Session, appointment_id: int, status: AppointmentStatus, actor: str = "cli"
) -> tuple[Appointment, ReconcileResult]:
    """:func:`set_appointment_status`, also saying what the re-plan did to the messages."""
    appointment: Appointment = get(session, Appointment, appointment_id)
    if appointment.status is status:
        return appointment, ReconcileResult()
    if appointment.status not in _ALLOWED[status]:
        raise InvalidInput(
            f"appointment {appointment_id} is {appointment.status.value}; it cannot become {status.value}"
        )
    appointment.status = status
    return appointment, _after_appointment_change(session, appointment, actor, f"appointment.{status.value}")


def _after_appointment_change(
    session: Session, appointment: Appointment, actor: str, action: str
) -> ReconcileResult:
    session.flush()
    audit(
        session, clinic_id=appointment.plan.patient.clinic_id, actor=actor, action=action,
        subject_type="appointment", subject_id=appointment.id,
    )
    return reconcile_plan(session, appointment.plan_id)
