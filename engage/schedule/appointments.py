"""Appointment changes (add, move, cancel, complete, no-show) and the re-plan each one causes.

Each function works inside the caller's session, raises ``InvalidInput`` or
``NotFound`` before writing anything, audits the change and reconciles the plan's
messages, so a moved visit's reminders move and a cancelled one's are cancelled.

Rules: adding or moving an appointment into the past needs ``allow_past`` (staff
recording history); an added or moved appointment may not overlap another booked
appointment of the same patient (the error names it); only an appointment that has
started can be completed or marked a no-show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.errors import InvalidInput
from engage.records import external_ids, plans, validation
from engage.records.audit import AuditAction, audit
from engage.records.lookup import get
from engage.records.models import Appointment, AppointmentStatus, TreatmentPlan
from engage.schedule.reconcile import ReconcileResult, reconcile_plan


@dataclass(frozen=True)
class AppointmentChange:
    """An appointment after a change, and what the re-plan did to its patient's messages."""

    appointment: Appointment
    messages: ReconcileResult


def add_appointment(
    session: Session,
    *,
    plan_id: int,
    start: str | datetime,
    actor: str,
    end: str | datetime | None = None,
    duration: timedelta | None = None,
    external_id: str | None = None,
    allow_past: bool = False,
) -> AppointmentChange:
    """Book one more appointment in a plan; its messages are planned. ``external_id``: the clinic's own id
    (unique per clinic). Raises ``InvalidInput`` (end before start, in the past, overlaps a booked visit)."""
    plan: TreatmentPlan = get(session, TreatmentPlan, plan_id)
    clinic_id = plan.patient.clinic_id
    external_id = external_ids.check_free(session, Appointment, clinic_id, external_id)
    tz = plan.patient.effective_timezone
    start_at = validation.local_datetime(start, tz)
    if end is not None:
        end_at = validation.local_datetime(end, tz)
    else:
        end_at = start_at + (duration or timedelta(minutes=plan.session_minutes))
    if end_at <= start_at:
        raise InvalidInput("an appointment must end after it starts")
    validation.not_in_past(start_at, tz, allow_past=allow_past)
    plans.refuse_overlap(session, plan.patient_id, None, start_at, end_at, tz)
    appointment = Appointment(
        plan_id=plan.id,
        start_at=start_at,
        end_at=end_at,
        status=AppointmentStatus.BOOKED,
        external_id=external_id,
        external_clinic_id=clinic_id if external_id else None,
    )
    session.add(appointment)
    session.flush()
    return _after_appointment_change(session, appointment, actor, AuditAction.APPOINTMENT_ADD)


def move_appointment(
    session: Session,
    appointment_id: int,
    to: str | datetime,
    *,
    actor: str,
    allow_past: bool = False,
    length: timedelta | None = None,
    check_overlap: bool = True,
) -> AppointmentChange:
    """Move a booked appointment, keeping its length (or taking ``length``); its pending messages move with it.

    ``check_overlap=False``: the caller checked the state a whole batch of changes leaves (a sync that
    swaps two visits passes through an overlap), so this move does not check it again."""
    appointment: Appointment = get(session, Appointment, appointment_id)
    if appointment.status is not AppointmentStatus.BOOKED:
        raise InvalidInput(f"appointment {appointment_id} is {appointment.status.value}; only booked ones can move")
    if length is not None and length <= timedelta(0):
        raise InvalidInput("an appointment must end after it starts (duration must be positive)")
    tz = appointment.plan.patient.effective_timezone
    length = length or appointment.end_at - appointment.start_at
    start_at = validation.local_datetime(to, tz)
    validation.not_in_past(start_at, tz, allow_past=allow_past)
    if check_overlap:
        plans.refuse_overlap(session, appointment.plan.patient_id, appointment.id, start_at, start_at + length, tz)
    appointment.start_at = start_at
    appointment.end_at = start_at + length
    return _after_appointment_change(session, appointment, actor, AuditAction.APPOINTMENT_MOVE)


#: status -> the statuses it may be reached from. Booked again from cancelled or no-show is the undo
#: (re-book): the visit's messages are re-planned, as the practice-management system may also do.
_ALLOWED = {
    AppointmentStatus.BOOKED: {AppointmentStatus.CANCELLED, AppointmentStatus.NO_SHOW},
    AppointmentStatus.CANCELLED: {AppointmentStatus.BOOKED},
    AppointmentStatus.COMPLETED: {AppointmentStatus.BOOKED, AppointmentStatus.NO_SHOW},
    AppointmentStatus.NO_SHOW: {AppointmentStatus.BOOKED, AppointmentStatus.COMPLETED},
}


def may_become(current: AppointmentStatus, status: AppointmentStatus) -> bool:
    """Whether an appointment in ``current`` may change to ``status`` (the same status always may)."""
    return current is status or current in _ALLOWED.get(status, set())


def set_appointment_status(
    session: Session,
    appointment_id: int,
    status: AppointmentStatus,
    *,
    actor: str,
    check_overlap: bool = True,
) -> AppointmentChange:
    """Cancel, complete, mark a no-show or book again (undo a cancel or no-show); pending messages follow
    (a cancelled visit's reminders are cancelled, a re-booked one's planned again).

    The same status again changes nothing. Only an appointment that has started can be completed or a no-show.
    Booking a visit again is refused when it would overlap another booked visit of the patient (the error
    names it); ``check_overlap=False``: the caller (a sync) checked the state the batch leaves."""
    appointment: Appointment = get(session, Appointment, appointment_id)
    if appointment.status is status:
        return AppointmentChange(appointment, ReconcileResult())
    if appointment.status not in _ALLOWED[status]:
        raise InvalidInput(
            f"appointment {appointment_id} is {appointment.status.value}; it cannot become {status.value}"
        )
    if status in (AppointmentStatus.COMPLETED, AppointmentStatus.NO_SHOW) and appointment.start_at > utcnow():
        raise InvalidInput(
            f"appointment {appointment_id} has not started yet; it can become {status.value} once it has"
        )
    if status is AppointmentStatus.BOOKED and check_overlap:
        patient = appointment.plan.patient
        plans.refuse_overlap(
            session, patient.id, appointment.id, appointment.start_at, appointment.end_at, patient.effective_timezone
        )
    appointment.status = status
    return _after_appointment_change(session, appointment, actor, _STATUS_ACTION[status])


_STATUS_ACTION = {
    AppointmentStatus.BOOKED: AuditAction.APPOINTMENT_BOOKED,
    AppointmentStatus.CANCELLED: AuditAction.APPOINTMENT_CANCELLED,
    AppointmentStatus.COMPLETED: AuditAction.APPOINTMENT_COMPLETED,
    AppointmentStatus.NO_SHOW: AuditAction.APPOINTMENT_NO_SHOW,
}


def confirm_appointment(session: Session, appointment_id: int, *, actor: str) -> Appointment:
    """Staff confirmed a booked visit with the patient (by phone, at the desk): recorded with who did it.

    A call-back request is answered by it. Raises ``InvalidInput`` for a visit that is not booked."""
    appointment: Appointment = get(session, Appointment, appointment_id)
    if appointment.status is not AppointmentStatus.BOOKED:
        raise InvalidInput(f"appointment {appointment_id} is {appointment.status.value}; only booked visits confirm")
    appointment.confirmed_at, appointment.confirmed_by = utcnow(), actor
    appointment.callback_requested_at = None
    session.flush()
    audit(
        session,
        clinic_id=appointment.plan.patient.clinic_id,
        actor=actor,
        action=AuditAction.APPOINTMENT_CONFIRMED_BY_STAFF,
        subject_type="appointment",
        subject_id=appointment.id,
    )
    return appointment


def _after_appointment_change(
    session: Session, appointment: Appointment, actor: str, action: AuditAction
) -> AppointmentChange:
    session.flush()
    audit(
        session,
        clinic_id=appointment.plan.patient.clinic_id,
        actor=actor,
        action=action,
        subject_type="appointment",
        subject_id=appointment.id,
    )
    return AppointmentChange(appointment, reconcile_plan(session, appointment.plan_id))
