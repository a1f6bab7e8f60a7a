"""Treatment plans and their appointments, created in the patient's wall time (DST-correct)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.errors import InvalidInput
from engage.records import external_ids, validation
from engage.records.audit import AuditAction, audit
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
    actor: str,
    allow_past: bool = False,
    practitioner_id: int | None = None,
) -> TreatmentPlan:
    """A plan with ``sessions`` appointments, the first at ``first``, then every ``every``.

    A ``first`` without an offset is the patient's wall time; later sessions keep that wall
    time across DST changes when ``every`` is a whole number of days. A first session in the
    past is refused unless ``allow_past`` (staff recording a plan that already started).
    ``external_id``: the clinic's own id for the plan (unique per clinic). ``practitioner_id``: who treats (one
    of the clinic's practitioners), set on the plan and each appointment.

    Raises ``InvalidInput`` naming its field before writing anything: a blank condition or
    treatment (``modality``), sessions that would overlap each other (``every`` shorter than
    ``duration``), or a session that overlaps another booked appointment of the patient (the
    error names it).
    """
    patient: Patient = get(session, Patient, patient_id)
    condition, modality = condition.strip(), modality.strip()
    if not condition:
        raise InvalidInput("a plan needs a condition", field="condition")
    if not modality:
        raise InvalidInput("a plan needs a treatment (modality)", field="modality")
    if not 1 <= sessions <= 100:
        raise InvalidInput("sessions must be between 1 and 100", field="sessions")
    if every <= timedelta(0):
        raise InvalidInput("the time between sessions must be positive", field="every")
    if duration <= timedelta(0):
        raise InvalidInput("an appointment must end after it starts (duration must be positive)", field="duration")
    if reassess_every < 1:
        raise InvalidInput("reassess-every must be at least 1", field="reassess_every")
    external_id = external_ids.check_free(session, TreatmentPlan, patient.clinic_id, external_id)
    practitioner_id = checked_practitioner_id(session, patient.clinic_id, practitioner_id)
    tz = patient.effective_timezone
    try:
        start = validation.local_datetime(first, tz)
        validation.not_in_past(start, tz, allow_past=allow_past, what="the first session")
    except InvalidInput as exc:
        raise InvalidInput(str(exc), field="first") from None
    wall = start.astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    whole_days = every % timedelta(days=1) == timedelta(0)
    starts = [
        validation.local_datetime(wall + n * every, tz) if whole_days else start + n * every for n in range(sessions)
    ]
    _refuse_overlapping_sessions(starts, duration, tz)
    for n, at in enumerate(starts, start=1):
        when = f"session {n} ({at.astimezone(ZoneInfo(tz)):%Y-%m-%d %H:%M})"
        refuse_overlap(session, patient.id, None, at, at + duration, tz, what=when, field="first")
    plan = TreatmentPlan(
        patient_id=patient.id,
        condition=condition,
        modality=modality,
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
    for at in starts:
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
        action=AuditAction.PLAN_CREATE,
        subject_type="treatment_plan",
        subject_id=plan.id,
        sessions=sessions,
    )
    return plan


def _refuse_overlapping_sessions(starts: list[datetime], duration: timedelta, tz: str) -> None:
    """Refuse a plan whose own sessions overlap (``every`` shorter than a session), naming the first two."""
    for n, (this, following) in enumerate(zip(starts, starts[1:], strict=False), start=1):
        if following < this + duration:
            zone = ZoneInfo(tz)
            raise InvalidInput(
                f"session {n} ({this.astimezone(zone):%Y-%m-%d %H:%M}) and session {n + 1} "
                f"({following.astimezone(zone):%Y-%m-%d %H:%M}) would overlap: the time between sessions must be "
                "at least the session length",
                field="every",
            )


def refuse_overlap(
    session: Session,
    patient_id: int,
    appointment_id: int | None,
    start_at: datetime,
    end_at: datetime,
    tz: str,
    *,
    what: str = "that time",
    field: str | None = None,
) -> None:
    """Refuse a slot that overlaps another booked appointment of the same patient (``appointment_id``, the one
    being moved, aside), naming it; ``what`` names the slot in the sentence, ``field`` the input at fault.

    Two booked visits at once would make the re-plan treat one as moved and cancel its reminders.
    """
    other = session.scalars(
        select(Appointment)
        .join(TreatmentPlan, TreatmentPlan.id == Appointment.plan_id)
        .where(
            TreatmentPlan.patient_id == patient_id,
            Appointment.status == AppointmentStatus.BOOKED,
            Appointment.id != (appointment_id or -1),
            Appointment.start_at < end_at,
            Appointment.end_at > start_at,
        )
        .order_by(Appointment.start_at)
        .limit(1)
    ).first()
    if other is not None:
        zone = ZoneInfo(tz)
        raise InvalidInput(
            f"{what} overlaps appointment {other.id} of the same patient "
            f"({other.start_at.astimezone(zone):%Y-%m-%d %H:%M}); move or cancel that one first",
            field=field,
        )


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
