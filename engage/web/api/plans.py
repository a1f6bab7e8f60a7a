"""``/plans`` and ``/appointments``: book a plan with its sessions, add, move, cancel, complete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from sqlalchemy.orm import Session

from engage.errors import InvalidInput
from engage.records import plans
from engage.records.lookup import get_in_clinic
from engage.records.models import Appointment, AppointmentStatus, Patient, TreatmentPlan
from engage.schedule import appointments
from engage.schedule.durations import parse_duration
from engage.schedule.enrollments import enroll
from engage.schedule.plan_exercises import choose_exercises
from engage.web.api.context import CallerDep, ExercisePicker, IdempotencyKeyHeader, PlansWriter, read, write
from engage.web.api.problems import errors
from engage.web.api.schemas import AppointmentIn, AppointmentOut, AppointmentPatch, ExercisesIn, PlanIn, PlanOut

plans_router = APIRouter(prefix="/plans", tags=["plans"], responses=errors(401, 422))
appointments_router = APIRouter(prefix="/appointments", tags=["appointments"], responses=errors(401, 422))
PlanId = Annotated[int, Path(description="engage's treatment plan id", examples=[12])]
AppointmentId = Annotated[int, Path(description="engage's appointment id", examples=[881])]


def duration(text: str, field: str) -> Any:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InvalidInput(str(exc), field=field) from None


def plan_out(plan: TreatmentPlan, enrollment_id: int | None = None) -> dict[str, Any]:
    return {
        "id": plan.id,
        "patient_id": plan.patient_id,
        "condition": plan.condition,
        "modality": plan.modality,
        "planned_sessions": plan.planned_sessions,
        "status": plan.status.value,
        "external_id": plan.external_id,
        "appointments": [plans.appointment_json(a) for a in plan.appointments],
        "enrollment_id": enrollment_id,
        "exercises": list(plan.exercises or []),
        "practitioner_id": plan.practitioner_id,
    }


@plans_router.post(
    "",
    status_code=201,
    response_model=PlanOut,
    summary="Create a plan and book its sessions",
    responses=errors(403, 404, 413),
)
def create_plan(body: PlanIn, request: Request, caller: PlansWriter, key: IdempotencyKeyHeader = None) -> Any:
    """Book `sessions` appointments, the first at `first`, then every `every` (same local time across DST for
    whole days). With `sequence`, enroll the plan right away."""

    def work(session: Session) -> dict[str, Any]:
        get_in_clinic(session, Patient, body.patient_id, caller.clinic_id)
        created = plans.create_plan(
            session,
            patient_id=body.patient_id,
            condition=body.condition,
            modality=body.modality,
            first=body.first,
            sessions=body.sessions,
            every=duration(body.every, "every"),
            duration=duration(body.duration, "duration"),
            reassess_every=body.reassess_every,
            external_id=body.external_id,
            actor=caller.actor,
            allow_past=body.allow_past,
            practitioner_id=body.practitioner_id,
        )
        enrollment_id = None
        if body.sequence:
            enrollment, _ = enroll(session, body.patient_id, created.id, body.sequence, enrolled_by=caller.actor)
            enrollment_id = enrollment.id
        return plan_out(created, enrollment_id)

    return write(request, caller, key, body, work, status_code=201)


@plans_router.get("/{plan_id}", response_model=PlanOut, summary="A plan with its appointments", responses=errors(404))
def get_plan(plan_id: PlanId, caller: CallerDep) -> Any:
    """The plan, its appointments in start order, and the exercises the practitioner picked."""
    return read(lambda session: plan_out(get_in_clinic(session, TreatmentPlan, plan_id, caller.clinic_id)))


@plans_router.put(
    "/{plan_id}/exercises",
    response_model=PlanOut,
    summary="Set the exercises the practitioner picked",
    responses=errors(403, 404, 413),
)
def put_exercises(plan_id: PlanId, body: ExercisesIn, request: Request, caller: ExercisePicker) -> Any:
    """Replace the plan's exercises with `exercises` (library keys, in order). An unknown key or one given twice
    is refused (422) and nothing changes."""

    def work(session: Session) -> dict[str, Any]:
        found: TreatmentPlan = get_in_clinic(session, TreatmentPlan, plan_id, caller.clinic_id)
        try:
            return plan_out(choose_exercises(session, found.id, body.exercises, actor=caller.actor))
        except InvalidInput as exc:
            raise InvalidInput(str(exc), field="exercises") from None

    return write(request, caller, None, body, work)


@appointments_router.post(
    "",
    status_code=201,
    response_model=AppointmentOut,
    summary="Book one more appointment",
    responses=errors(403, 404, 413),
)
def create_appointment(
    body: AppointmentIn, request: Request, caller: PlansWriter, key: IdempotencyKeyHeader = None
) -> Any:
    """Book an appointment in a plan; enrolled sequences plan its reminders at once."""

    def work(session: Session) -> dict[str, Any]:
        get_in_clinic(session, TreatmentPlan, body.plan_id, caller.clinic_id)
        created = appointments.add_appointment(
            session,
            plan_id=body.plan_id,
            start=body.start,
            end=body.end,
            duration=duration(body.duration, "duration") if body.duration else None,
            external_id=body.external_id,
            actor=caller.actor,
            allow_past=body.allow_past,
        )
        return plans.appointment_json(created.appointment)

    return write(request, caller, key, body, work, status_code=201)


@appointments_router.patch(
    "/{appointment_id}",
    response_model=AppointmentOut,
    summary="Move, cancel, complete",
    responses=errors(403, 404, 413),
)
def change_appointment(
    appointment_id: AppointmentId, body: AppointmentPatch, request: Request, caller: PlansWriter
) -> Any:
    """`start` moves a booked appointment (its reminders move too); `status` cancels (reminders cancelled),
    completes or marks a no-show. Both at once: the move first."""

    def work(session: Session) -> dict[str, Any]:
        found: Appointment = get_in_clinic(session, Appointment, appointment_id, caller.clinic_id)
        if body.start is not None:
            appointments.move_appointment(session, found.id, body.start, actor=caller.actor, allow_past=body.allow_past)
        if body.status is not None:
            appointments.set_appointment_status(session, found.id, AppointmentStatus(body.status), actor=caller.actor)
        return plans.appointment_json(found)

    return write(request, caller, None, body, work)
