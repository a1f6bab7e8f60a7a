"""Clinics, patients, treatment plans and appointments: create and change them, validated.

Every function works inside the caller's session and raises ``InvalidInput`` or
``NotFound`` before writing anything, so a caller using ``session_scope()`` never
leaves a half-written record. Appointment changes re-plan the patient's messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage import validation
from engage.audit import audit
from engage.config import get_settings
from engage.errors import InvalidInput, NotFound
from engage.models import (
    Appointment,
    AppointmentStatus,
    Channel,
    Clinic,
    Enrollment,
    Patient,
    PlanStatus,
    TreatmentPlan,
)
from engage.windows import describe_quiet_hours, parse_window

if TYPE_CHECKING:
    from engage.reconcile import ReconcileResult


def get(session: Session, model: type[Any], record_id: int) -> Any:
    """The record, or ``NotFound`` naming its kind and id."""
    record = session.get(model, record_id)
    if record is None:
        raise NotFound(f"no {model.__tablename__.replace('_', ' ')} with id {record_id}")
    return record


def create_clinic(
    session: Session,
    *,
    name: str,
    timezone: str,
    address: str,
    email: str,
    sms_from: str | None = None,
    phone: str | None = None,
    region: str | None = None,
    quiet_hours: Mapping[str, str] | None = None,
    actor: str = "cli",
) -> Clinic:
    """A new clinic. ``quiet_hours``: channel (``sms``/``email``) -> ``"20:00-08:00"`` or ``"off"``;
    a channel not given keeps the default 20:00-08:00. Raises ``InvalidInput``."""
    if not name.strip():
        raise InvalidInput("the clinic needs a name")
    if not address.strip():
        raise InvalidInput("the clinic needs a postal address (every email must carry it)")
    region_code = validation.region(region or get_settings().default_region)
    clinic = Clinic(
        name=name.strip(),
        timezone=validation.timezone_name(timezone),
        address=address.strip(),
        email_from=validation.email_address(email),
        sms_from=validation.phone_e164(sms_from, region_code) if sms_from else None,
        phone=validation.phone_e164(phone, region_code) if phone else None,
        region=region_code,
        quiet_hours=quiet_hours_settings(quiet_hours or {}),
    )
    session.add(clinic)
    session.flush()
    audit(
        session, clinic_id=clinic.id, actor=actor, action="clinic.create", subject_type="clinic", subject_id=clinic.id,
    )
    return clinic


def quiet_hours_settings(given: Mapping[str, str], current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``current`` (a clinic's stored ``quiet_hours``) with the channels in ``given`` replaced, validated.

    ``given`` maps a channel to ``"HH:MM-HH:MM"`` or ``"off"``. Raises ``InvalidInput`` naming
    the channel and what is wrong, so nothing invalid is ever stored.
    """
    merged = dict(current or {})
    for channel, text in given.items():
        if channel not in {c.value for c in Channel}:
            raise InvalidInput(f"quiet hours are set for sms or email, not {channel!r}")
        try:
            merged[channel] = parse_window(text)
        except ValueError as exc:
            raise InvalidInput(f"{channel} quiet hours: {exc}") from None
    return merged


def set_quiet_hours(
    session: Session, clinic_id: int, given: Mapping[str, str], actor: str = "cli"
) -> tuple[Clinic, ReconcileResult]:
    """Change a clinic's quiet hours (see :func:`quiet_hours_settings`) and re-plan its patients' messages.

    Every active or paused enrollment of the clinic's patients is reconciled, so pending
    messages move to the new allowed times. Returns the clinic and the summed changes.
    Raises ``InvalidInput`` or ``NotFound`` before writing anything.
    """
    from engage.reconcile import PLANNING_ACTIVE, ReconcileResult, reconcile_plan

    clinic: Clinic = get(session, Clinic, clinic_id)
    if not given:
        raise InvalidInput("give the quiet hours to set for sms, email or both")
    # A new dict: the JSON column notices reassignment, not changes inside the old one.
    clinic.quiet_hours = quiet_hours_settings(given, clinic.quiet_hours)
    session.flush()
    audit(
        session, clinic_id=clinic.id, actor=actor, action="clinic.quiet_hours", subject_type="clinic",
        subject_id=clinic.id, channels=sorted(given),
    )
    plan_ids = session.scalars(
        select(Enrollment.plan_id)
        .join(Patient, Patient.id == Enrollment.patient_id)
        .where(Patient.clinic_id == clinic.id, Enrollment.status.in_(PLANNING_ACTIVE))
        .distinct()
        .order_by(Enrollment.plan_id)
    ).all()
    total = ReconcileResult()
    for plan_id in plan_ids:
        total += reconcile_plan(session, plan_id)
    return clinic, total


def clinic_json(clinic: Clinic) -> dict[str, Any]:
    """The clinic for staff, with the quiet hours in force per channel (defaults filled in)."""
    return {
        "id": clinic.id,
        "name": clinic.name,
        "timezone": clinic.timezone,
        "address": clinic.address,
        "email_from": clinic.email_from,
        "sms_from": clinic.sms_from,
        "phone": clinic.phone,
        "region": clinic.region,
        "quiet_hours": describe_quiet_hours(clinic.quiet_hours),
    }


def add_patient(
    session: Session,
    *,
    clinic_id: int,
    first_name: str,
    last_name: str,
    email: str | None = None,
    phone: str | None = None,
    timezone: str | None = None,
    locale: str = "en",
    actor: str = "cli",
) -> Patient:
    clinic: Clinic = get(session, Clinic, clinic_id)
    if not first_name.strip() or not last_name.strip():
        raise InvalidInput("the patient needs a first and a last name")
    if not email and not phone:
        raise InvalidInput("the patient needs an email address or a phone number (or both)")
    email_norm = validation.email_address(email) if email else None
    if email_norm and session.scalar(
        select(Patient.id).where(Patient.clinic_id == clinic.id, Patient.email == email_norm)
    ):
        raise InvalidInput("another patient of this clinic already has that email address")
    patient = Patient(
        clinic_id=clinic.id,
        first_name=first_name.strip(),
        last_name=last_name.strip(),
        email=email_norm,
        phone=validation.phone_e164(phone, clinic.region or get_settings().default_region) if phone else None,
        timezone=validation.timezone_name(timezone) if timezone else None,
        locale=validation.locale(locale),
    )
    session.add(patient)
    session.flush()
    audit(
        session, clinic_id=clinic.id, actor=actor, action="patient.create", subject_type="patient",
        subject_id=patient.id,
    )
    return patient


def create_plan(
    session: Session,
    *,
    patient_id: int,
    condition: str,
    modality: str,
    first: str | datetime,
    sessions: int,
    every: timedelta,
    duration: timedelta = timedelta(minutes=45),
    reassess_every: int = 3,
    actor: str = "cli",
) -> TreatmentPlan:
    """A plan with ``sessions`` appointments, the first at ``first``, then every ``every``.

    A ``first`` without an offset is the patient's wall time; later sessions keep that wall
    time across DST changes when ``every`` is a whole number of days.
    """
    patient: Patient = get(session, Patient, patient_id)
    if not 1 <= sessions <= 100:
        raise InvalidInput("sessions must be between 1 and 100")
    if every <= timedelta(0):
        raise InvalidInput("the time between sessions must be positive")
    if duration <= timedelta(0):
        raise InvalidInput("an appointment must end after it starts (duration must be positive)")
    if reassess_every < 1:
        raise InvalidInput("reassess-every must be at least 1")
    tz = patient.effective_timezone
    start = validation.local_datetime(first, tz)
    wall = start.astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    whole_days = every % timedelta(days=1) == timedelta(0)
    plan = TreatmentPlan(
        patient_id=patient.id,
        condition=condition.strip(),
        modality=modality.strip(),
        planned_sessions=sessions,
        cadence_minutes=int(every.total_seconds() // 60),
        session_minutes=int(duration.total_seconds() // 60),
        reassess_every=reassess_every,
        status=PlanStatus.ACTIVE,
    )
    session.add(plan)
    session.flush()
    for n in range(sessions):
        at = validation.local_datetime(wall + n * every, tz) if whole_days else start + n * every
        session.add(Appointment(plan_id=plan.id, start_at=at, end_at=at + duration, status=AppointmentStatus.BOOKED))
    session.flush()
    session.refresh(plan)
    audit(
        session, clinic_id=patient.clinic_id, actor=actor, action="plan.create", subject_type="treatment_plan",
        subject_id=plan.id, sessions=sessions,
    )
    return plan


def add_appointment(
    session: Session, *, plan_id: int, start: str | datetime, end: str | datetime | None = None,
    duration: timedelta | None = None, actor: str = "cli",
) -> Appointment:
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
    _after_appointment_change(session, appointment, actor, "appointment.add")
    return appointment


def move_appointment(session: Session, appointment_id: int, to: str | datetime, actor: str = "cli") -> Appointment:
    """Move a booked appointment, keeping its length; its pending messages move with it."""
    appointment: Appointment = get(session, Appointment, appointment_id)
    if appointment.status is not AppointmentStatus.BOOKED:
        raise InvalidInput(f"appointment {appointment_id} is {appointment.status.value}; only booked ones can move")
    length = appointment.end_at - appointment.start_at
    appointment.start_at = validation.local_datetime(to, appointment.plan.patient.effective_timezone)
    appointment.end_at = appointment.start_at + length
    _after_appointment_change(session, appointment, actor, "appointment.move")
    return appointment


_ALLOWED = {
    AppointmentStatus.CANCELLED: {AppointmentStatus.BOOKED},
    AppointmentStatus.COMPLETED: {AppointmentStatus.BOOKED, AppointmentStatus.NO_SHOW},
    AppointmentStatus.NO_SHOW: {AppointmentStatus.BOOKED, AppointmentStatus.COMPLETED},
}


def set_appointment_status(
    session: Session, appointment_id: int, status: AppointmentStatus, actor: str = "cli"
) -> Appointment:
    """Cancel, complete or mark a no-show; pending messages follow (a cancelled visit's reminders are cancelled)."""
    appointment: Appointment = get(session, Appointment, appointment_id)
    if appointment.status is status:
        return appointment
    if appointment.status not in _ALLOWED[status]:
        raise InvalidInput(
            f"appointment {appointment_id} is {appointment.status.value}; it cannot become {status.value}"
        )
    appointment.status = status
    _after_appointment_change(session, appointment, actor, f"appointment.{status.value}")
    return appointment


def _after_appointment_change(session: Session, appointment: Appointment, actor: str, action: str) -> None:
    from engage.reconcile import reconcile_plan  # planning sits above records; import at use keeps the layers apart

    session.flush()
    audit(
        session, clinic_id=appointment.plan.patient.clinic_id, actor=actor, action=action,
        subject_type="appointment", subject_id=appointment.id,
    )
    reconcile_plan(session, appointment.plan_id)


def appointment_json(appointment: Appointment) -> dict[str, Any]:
    return {
        "id": appointment.id,
        "start": appointment.start_at.isoformat(),
        "end": appointment.end_at.isoformat(),
        "status": appointment.status.value,
    }


def patient_json(patient: Patient) -> dict[str, Any]:
    """The patient with plans and appointments (for staff: includes contact details)."""
    return {
        "id": patient.id,
        "clinic_id": patient.clinic_id,
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "email": patient.email,
        "phone": patient.phone,
        "timezone": patient.effective_timezone,
        "locale": patient.locale,
        "plans": [
            {
                "id": plan.id,
                "condition": plan.condition,
                "modality": plan.modality,
                "planned_sessions": plan.planned_sessions,
                "status": plan.status.value,
                "appointments": [appointment_json(a) for a in plan.appointments],
            }
            for plan in patient.plans
        ],
    }
