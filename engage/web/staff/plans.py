"""Plans, appointments and enrolments from the patient page. Each change is answered with what it did to the
patient's messages ("2 messages moved, 1 cancelled"); enrolling shows every message and its local time first."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from engage.content.exercises import set_plan_exercises
from engage.db import session_scope
from engage.errors import InvalidInput, NotFound
from engage.records.models import AppointmentStatus
from engage.records.plans import create_plan
from engage.records.roles import Action
from engage.schedule import appointments, enrollments
from engage.schedule.explain import describe_result, preview_enrollment
from engage.schedule.sequences import get_sequence
from engage.web.staff.auth import CurrentStaff, require
from engage.web.staff.loaders import get_appointment_for, get_enrollment_for, get_patient_for, get_plan_for
from engage.web.staff.pages import redirect, render

router = APIRouter()

_STATUS = {
    "cancel": AppointmentStatus.CANCELLED,
    "complete": AppointmentStatus.COMPLETED,
    "no-show": AppointmentStatus.NO_SHOW,
}
_DONE = {"cancel": "cancelled", "complete": "marked attended", "no-show": "marked as a no-show"}


def _int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{what} must be a whole number") from None


def _apply(load: Callable[[Session], int], change: Callable[[Session], str], refused: str) -> tuple[int, str]:
    """Check access with ``load`` (404 outside the clinic, 403 for the role; it returns the patient's id),
    then make the ``change`` in the same transaction. An ``InvalidInput`` rolls the whole transaction back,
    so nothing is half-written, and becomes the notice ``"<refused>: <why>."``."""
    patient_id: int | None = None
    try:
        with session_scope() as session:
            patient_id = load(session)
            return patient_id, change(session)
    except InvalidInput as exc:
        assert patient_id is not None  # the loaders raise HTTPException, never InvalidInput
        return patient_id, f"{refused}: {exc}."


@router.post("/patients/{patient_id}/plans")
async def new_plan(
    staff: CurrentStaff,
    patient_id: int,
    condition: Annotated[str, Form()] = "",
    modality: Annotated[str, Form()] = "",
    first: Annotated[str, Form()] = "",
    sessions: Annotated[str, Form()] = "",
    every_days: Annotated[str, Form()] = "7",
    minutes: Annotated[str, Form()] = "45",
    allow_past: Annotated[bool, Form()] = False,
) -> Response:
    def save() -> str:
        with session_scope() as session:
            patient = get_patient_for(session, staff, patient_id)
            require(staff, Action.EDIT_PLANS)
            if not condition.strip() or not modality.strip():
                raise InvalidInput("a plan needs a condition and a treatment")
            plan = create_plan(
                session,
                patient_id=patient.id,
                condition=condition,
                modality=modality,
                first=first,
                sessions=_int(sessions, "sessions"),
                every=timedelta(days=_int(every_days, "days between sessions")),
                duration=timedelta(minutes=_int(minutes, "session minutes")),
                actor=staff.email,
                allow_past=allow_past,
            )
            return f"Plan created with {len(plan.appointments)} appointments."

    try:
        notice = await run_in_threadpool(save)
    except InvalidInput as exc:
        notice = f"Plan not created: {exc}."
    return redirect(f"/patients/{patient_id}#plans", notice)


@router.post("/plans/{plan_id}/appointments")
async def add_appointment(
    staff: CurrentStaff, plan_id: int, start: Annotated[str, Form()] = "", allow_past: Annotated[bool, Form()] = False
) -> Response:
    def load(session: Session) -> int:
        plan = get_plan_for(session, staff, plan_id)
        require(staff, Action.EDIT_PLANS)
        return plan.patient_id

    def change(session: Session) -> str:
        _, result = appointments.add_appointment_replanned(
            session, plan_id=plan_id, start=start, actor=staff.email, allow_past=allow_past
        )
        return f"Appointment added; {describe_result(result)}."

    patient_id, notice = await run_in_threadpool(_apply, load, change, "Appointment not added")
    return redirect(f"/patients/{patient_id}#plans", notice)


@router.post("/plans/{plan_id}/exercises")
async def plan_exercises(staff: CurrentStaff, plan_id: int, exercises: Annotated[list[str], Form()] = []) -> Response:  # noqa: B006
    """The exercises the practitioner picked for the plan (none ticked: the generic stretch wording)."""

    def load(session: Session) -> int:
        plan = get_plan_for(session, staff, plan_id)
        require(staff, Action.PICK_EXERCISES)
        return plan.patient_id

    def change(session: Session) -> str:
        chosen = set_plan_exercises(session, plan_id, exercises, actor=staff.email).exercises
        return f"Exercises for plan {plan_id}: {', '.join(chosen) if chosen else 'none picked'}."

    patient_id, notice = await run_in_threadpool(_apply, load, change, "Exercises not changed")
    return redirect(f"/patients/{patient_id}#exercises-{plan_id}", notice)


def _appointment_access(staff: CurrentStaff, appointment_id: int) -> Callable[[Session], int]:
    def load(session: Session) -> int:
        appointment = get_appointment_for(session, staff, appointment_id)
        require(staff, Action.EDIT_PLANS)
        return appointment.plan.patient_id

    return load


@router.post("/appointments/{appointment_id}/move")
async def move_appointment(staff: CurrentStaff, appointment_id: int, to: Annotated[str, Form()] = "") -> Response:
    def change(session: Session) -> str:
        _, result = appointments.move_appointment_replanned(session, appointment_id, to, actor=staff.email)
        return f"Appointment moved; {describe_result(result)}."

    patient_id, notice = await run_in_threadpool(
        _apply, _appointment_access(staff, appointment_id), change, "Appointment not moved"
    )
    return redirect(f"/patients/{patient_id}#plans", notice)


@router.post("/appointments/{appointment_id}/{verb}")
async def appointment_status(staff: CurrentStaff, appointment_id: int, verb: str) -> Response:
    if verb not in _STATUS:
        raise HTTPException(status_code=404, detail="not found")

    def change(session: Session) -> str:
        _, result = appointments.set_appointment_status_replanned(
            session, appointment_id, _STATUS[verb], actor=staff.email
        )
        return f"Appointment {_DONE[verb]}; {describe_result(result)}."

    patient_id, notice = await run_in_threadpool(
        _apply, _appointment_access(staff, appointment_id), change, "Appointment not changed"
    )
    return redirect(f"/patients/{patient_id}#plans", notice)


@router.get("/patients/{patient_id}/plans/{plan_id}/enrol", response_class=HTMLResponse)
async def enrol_preview(
    request: Request, staff: CurrentStaff, patient_id: int, plan_id: int, sequence: str = ""
) -> HTMLResponse:
    def load() -> HTMLResponse:
        with session_scope() as session:
            plan = get_plan_for(session, staff, plan_id, patient_id)
            require(staff, Action.EDIT_PLANS)
            try:
                seq = get_sequence(sequence)
            except NotFound:
                raise HTTPException(status_code=404, detail="no such sequence") from None
            rows = preview_enrollment(session, plan.patient, plan, seq.key)
            return render(
                request,
                "enrol_preview.html",
                staff,
                nav="patients",
                p=plan.patient,
                plan=plan,
                seq=seq,
                rows=rows,
                tz=plan.patient.effective_timezone,
            )

    return await run_in_threadpool(load)


@router.post("/patients/{patient_id}/plans/{plan_id}/enrol")
async def enrol(staff: CurrentStaff, patient_id: int, plan_id: int, sequence: Annotated[str, Form()] = "") -> Response:
    def save() -> str:
        with session_scope() as session:
            plan = get_plan_for(session, staff, plan_id, patient_id)
            require(staff, Action.EDIT_PLANS)
            _, result = enrollments.enroll(session, patient_id, plan.id, sequence, enrolled_by=staff.email)
            return f"Enrolled in {sequence}: {result.inserted} messages planned."

    try:
        notice = await run_in_threadpool(save)
    except (InvalidInput, NotFound) as exc:
        notice = f"Not enrolled: {exc}."
    return redirect(f"/patients/{patient_id}#timeline", notice)


_ENROLLMENT_CHANGES = {"pause": enrollments.pause, "resume": enrollments.resume, "cancel": enrollments.cancel}
_PAST = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}


@router.post("/enrollments/{enrollment_id}/{verb}")
async def change_enrollment(staff: CurrentStaff, enrollment_id: int, verb: str) -> Response:
    change = _ENROLLMENT_CHANGES.get(verb)
    if change is None:
        raise HTTPException(status_code=404, detail="not found")

    def load(session: Session) -> int:
        enrollment = get_enrollment_for(session, staff, enrollment_id)
        require(staff, Action.EDIT_PLANS)
        return enrollment.patient_id

    def apply(session: Session) -> str:
        _, result = change(session, enrollment_id, actor=staff.email)
        return f"Enrolment {_PAST[verb]}; {describe_result(result)}."

    patient_id, notice = await run_in_threadpool(_apply, load, apply, "Enrolment not changed")
    return redirect(f"/patients/{patient_id}#plans", notice)
