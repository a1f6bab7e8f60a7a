"""Plans, appointments and enrollments from the patient page. Each change is answered with what it did to the
patient's messages ("2 messages moved, 1 cancelled"); enrolling shows every message and its local time first."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException

from engage.db import session_scope
from engage.errors import InvalidInput, NotFound
from engage.records.models import Appointment, AppointmentStatus
from engage.records.plans import create_plan
from engage.schedule import appointments, enrollments
from engage.schedule.explain import describe_result, preview_enrollment
from engage.schedule.plan_exercises import choose_exercises
from engage.schedule.session_numbers import number_visits
from engage.schedule.versions import published_content
from engage.web.staff.auth import ExercisePicker, PlansEditor
from engage.web.staff.loaders import get_appointment_for, get_enrollment_for, get_patient_for, get_plan_for
from engage.web.staff.pages import local, redirect, refusing, render
from engage.web.staff.patient_page import patient_page_refused

router = APIRouter()

_STATUS = {
    "cancel": AppointmentStatus.CANCELLED,
    "complete": AppointmentStatus.COMPLETED,
    "no-show": AppointmentStatus.NO_SHOW,
    "rebook": AppointmentStatus.BOOKED,
}
_DONE = {
    "cancel": "cancelled",
    "complete": "marked attended",
    "no-show": "marked as a no-show",
    "rebook": "booked again",
}
#: verb -> (page title, what happens, the confirm button, the undo's name): the step before a cancel or no-show.
_CONFIRM = {
    "cancel": (
        "Cancel this visit?",
        "Its reminders and follow-ups that have not gone out are cancelled.",
        "Yes, cancel the visit",
        "Book again",
    ),
    "no-show": (
        "Mark this visit a no-show?",
        "Its aftercare messages that have not gone out are dropped.",
        "Yes, mark it a no-show",
        "Undo no-show",
    ),
}


def _int(value: str, what: str, field: str | None = None) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{what} must be a whole number", field=field) from None


#: The plan form's input for each field the library names (``engage.records.plans.create_plan``).
_PLAN_INPUTS = {"every": "every_days", "duration": "minutes", "reassess_every": "form"}


@router.post("/patients/{patient_id}/plans")
def new_plan(
    request: Request,
    staff: PlansEditor,
    patient_id: int,
    condition: Annotated[str, Form()] = "",
    modality: Annotated[str, Form()] = "",
    first: Annotated[str, Form()] = "",
    sessions: Annotated[str, Form()] = "",
    every_days: Annotated[str, Form()] = "7",
    minutes: Annotated[str, Form()] = "45",
    allow_past: Annotated[bool, Form()] = False,
) -> Response:
    try:
        with session_scope() as session:
            patient = get_patient_for(session, staff, patient_id)
            plan = create_plan(
                session,
                patient_id=patient.id,
                condition=condition,
                modality=modality,
                first=first,
                sessions=_int(sessions, "sessions", "sessions"),
                every=timedelta(days=_int(every_days, "days between sessions", "every")),
                duration=timedelta(minutes=_int(minutes, "session minutes", "duration")),
                actor=staff.email,
                allow_past=allow_past,
            )
            notice = f"Plan created with {len(plan.appointments)} appointments."
    except InvalidInput as exc:  # the form again, the reason beside the field at fault (nothing was written)
        form = {"condition": condition, "modality": modality, "first": first, "sessions": sessions}
        form |= {"every_days": every_days, "minutes": minutes, "allow_past": "1" if allow_past else ""}
        errors = {_PLAN_INPUTS.get(exc.field or "form", exc.field or "form"): f"Plan not created: {exc}."}
        return patient_page_refused(request, staff, patient_id, form, errors)
    return redirect(f"/patients/{patient_id}#plans", notice)


@router.post("/plans/{plan_id}/appointments")
def add_appointment(
    staff: PlansEditor, plan_id: int, start: Annotated[str, Form()] = "", allow_past: Annotated[bool, Form()] = False
) -> Response:
    with session_scope() as session:
        back = f"/patients/{get_plan_for(session, staff, plan_id).patient_id}#plans"
        with refusing("Appointment not added", back):
            result = appointments.add_appointment(
                session, plan_id=plan_id, start=start, actor=staff.email, allow_past=allow_past
            ).messages
    return redirect(back, f"Appointment added; {describe_result(result)}.")


@router.post("/plans/{plan_id}/exercises")
def plan_exercises(staff: ExercisePicker, plan_id: int, exercises: Annotated[list[str], Form()] = []) -> Response:  # noqa: B006
    """The exercises the practitioner picked for the plan (none ticked: the generic stretch wording)."""
    with session_scope() as session:
        back = f"/patients/{get_plan_for(session, staff, plan_id).patient_id}#exercises-{plan_id}"
        with refusing("Exercises not changed", back):
            chosen = choose_exercises(session, plan_id, exercises, actor=staff.email).exercises
    return redirect(back, f"Exercises for plan {plan_id}: {', '.join(chosen) if chosen else 'none picked'}.")


@router.post("/appointments/{appointment_id}/move")
def move_appointment(staff: PlansEditor, appointment_id: int, to: Annotated[str, Form()] = "") -> Response:
    with session_scope() as session:
        back = f"/patients/{get_appointment_for(session, staff, appointment_id).plan.patient_id}#plans"
        with refusing("Appointment not moved", back):
            result = appointments.move_appointment(session, appointment_id, to, actor=staff.email).messages
    return redirect(back, f"Appointment moved; {describe_result(result)}.")


@router.get("/appointments/{appointment_id}/{verb}", response_class=HTMLResponse)
def confirm_appointment_status(request: Request, staff: PlansEditor, appointment_id: int, verb: str) -> HTMLResponse:
    """The confirmation step of a cancel or no-show, naming the patient and the visit."""
    if verb not in _CONFIRM:
        raise HTTPException(status_code=404, detail="not found")
    title, consequence, confirm, undo = _CONFIRM[verb]
    with session_scope() as session:
        appointment = get_appointment_for(session, staff, appointment_id)
        plan = appointment.plan
        tz = plan.patient.effective_timezone
        return render(
            request,
            "appointment_confirm.html",
            staff,
            nav="patients",
            title=title,
            consequence=consequence,
            confirm=confirm,
            undo=undo,
            verb=verb,
            appointment=appointment,
            plan=plan,
            patient=plan.patient,
            tz=tz,
            visit=_visit_name(appointment, tz),
        )


@router.post("/appointments/{appointment_id}/{verb}")
def appointment_status(staff: PlansEditor, appointment_id: int, verb: str) -> Response:
    if verb not in _STATUS:
        raise HTTPException(status_code=404, detail="not found")
    with session_scope() as session:
        appointment = get_appointment_for(session, staff, appointment_id)
        back = f"/patients/{appointment.plan.patient_id}#plans"
        tz = appointment.plan.patient.effective_timezone
        visit = _visit_name(appointment, tz)  # as it was numbered when staff chose it
        with refusing("Appointment not changed", back):
            result = appointments.set_appointment_status(
                session, appointment_id, _STATUS[verb], actor=staff.email
            ).messages
        if verb == "rebook":
            visit = _visit_name(appointment, tz)  # numbered again
    undo = f' Undo: "{_CONFIRM[verb][3]}" on the patient page.' if verb in _CONFIRM else ""
    return redirect(back, f"Appointment {_DONE[verb]} ({visit}); {describe_result(result)}.{undo}")


def _visit_name(appointment: Appointment, tz: str) -> str:
    """ "session 3, Tue 09 Dec 2026, 10:00" (a cancelled visit has no session number)."""
    number = number_visits(appointment.plan.appointments).number_of(appointment.id)
    when = local(appointment.start_at, tz)
    return f"session {number}, {when}" if number is not None else f"cancelled visit of {when}"


@router.get("/patients/{patient_id}/plans/{plan_id}/enroll", response_class=HTMLResponse)
def enroll_preview(
    request: Request, staff: PlansEditor, patient_id: int, plan_id: int, sequence: str = ""
) -> HTMLResponse:
    with session_scope() as session:
        plan = get_plan_for(session, staff, plan_id, patient_id)
        try:
            seq = published_content(session, plan.patient.clinic_id, sequence).sequence
        except NotFound:
            raise HTTPException(status_code=404, detail="no such sequence") from None
        rows = preview_enrollment(session, plan.patient, plan, seq.key)
        return render(
            request,
            "enroll_preview.html",
            staff,
            nav="patients",
            p=plan.patient,
            plan=plan,
            seq=seq,
            rows=rows,
            tz=plan.patient.effective_timezone,
        )


@router.post("/patients/{patient_id}/plans/{plan_id}/enroll")
def enroll(staff: PlansEditor, patient_id: int, plan_id: int, sequence: Annotated[str, Form()] = "") -> Response:
    back = f"/patients/{patient_id}#timeline"
    with refusing("Not enrolled", back, NotFound), session_scope() as session:
        plan = get_plan_for(session, staff, plan_id, patient_id)
        _, result = enrollments.enroll(session, patient_id, plan.id, sequence, enrolled_by=staff.email)
    return redirect(back, f"Enrolled in {sequence}: {result.inserted} messages planned.")


_ENROLLMENT_CHANGES = {"pause": enrollments.pause, "resume": enrollments.resume, "cancel": enrollments.cancel}
_PAST = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}


@router.post("/enrollments/{enrollment_id}/{verb}")
def change_enrollment(staff: PlansEditor, enrollment_id: int, verb: str) -> Response:
    change = _ENROLLMENT_CHANGES.get(verb)
    if change is None:
        raise HTTPException(status_code=404, detail="not found")
    with session_scope() as session:
        back = f"/patients/{get_enrollment_for(session, staff, enrollment_id).patient_id}#plans"
        with refusing("Enrollment not changed", back):
            _, result = change(session, enrollment_id, actor=staff.email)
    return redirect(back, f"Enrollment {_PAST[verb]}; {describe_result(result)}.")
