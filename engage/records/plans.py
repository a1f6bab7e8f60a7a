"""Treatment plans and their appointments, created in the patient's wall time (DST-correct)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from engage.errors import InvalidInput
from engage.records import external_ids, validation
from engage.records.audit import audit
from engage.records.lookup import get
from engage.records.models import Appointment, AppointmentStatus, Patient, PlanStatus, TreatmentPlan
from engage.records.practitioners import checked_practitioner_id


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
    external_id: str | None = None,
    actor: str = "cli",
    allow_past: bool = False,
    practitioner_id: int | None = None,
) -> TreatmentPlan:
    """A plan with ``sessions`` appointments, the first at ``first``, then every ``every``.

    A ``first`` without an offset is the patient's wall time; later sessions keep that wall
    time across DST changes when ``every`` is a whole number of days. A first session in the
    past is refused unless ``allow_past`` (staff recording a plan that already started).
    ``external_id``: the clinic's own id for the plan (unique per clinic). ``practitioner_id``: who treats (one
    of the clinic's practitioners), set on the plan and each appointment.
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
    external_id = external_ids.check_free(session, TreatmentPlan, patient.clinic_id, external_id)
    practitioner_id = checked_practitioner_id(session, patient.clinic_id, practitioner_id)
    tz = patient.effective_timezone
    start = validation.local_datetime(first, tz)
    validation.not_in_past(start, tz, allow_past=allow_past, what="the first session")
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
        external_id=external_id,
        external_clinic_id=patient.clinic_id if external_id else None,
        practitioner_id=practitioner_id,
    )
    session.add(plan)
    session.flush()
    for n in range(sessions):
        at = validation.local_datetime(wall + n * every, tz) if whole_days else start + n * every
        session.add(
            Appointment(
                plan_id=plan.id,
                start_at=at,
                end_at=at + duration,
                status=AppointmentStatus.BOOKED,
                practitioner_id=practitioner_id,
            )
        )
    session.flush()
    session.refresh(plan)
    audit(
        session,
        clinic_id=patient.clinic_id,
        actor=actor,
        action="plan.create",
        subject_type="treatment_plan",
        subject_id=plan.id,
        sessions=sessions,
    )
    return plan


def appointment_json(appointment: Appointment) -> dict[str, Any]:
    return {
        "id": appointment.id,
        "plan_id": appointment.plan_id,
        "start": appointment.start_at.isoformat(),
        "end": appointment.end_at.isoformat(),
        "status": appointment.status.value,
        "confirmed_at": appointment.confirmed_at.isoformat() if appointment.confirmed_at else None,
        "callback_requested_at": (
            appointment.callback_requested_at.isoformat() if appointment.callback_requested_at else None
        ),
        "external_id": appointment.external_id,
        "practitioner_id": appointment.practitioner_id,
    }
