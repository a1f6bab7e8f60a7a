"""``/patients/{id}``: everything about one patient on one page, and the consent form.

Contact details, consent per channel with its history, plans with their appointments
and enrollments, the timeline (a message's text on demand), replies, the pain-score
chart, and the record's history from the audit table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from engage.clock import utcnow
from engage.content.exercises import load_exercises
from engage.content.rendering import TemplateError
from engage.conversation.consent import consent_in_force
from engage.conversation.inbox import replies_of
from engage.conversation.outcomes import list_outcomes, record_staff_outcome
from engage.db import session_scope
from engage.delivery.providers.base import OutgoingSms
from engage.delivery.send_checks import render as render_message
from engage.records.audit import patient_history, record_view
from engage.records.models import (
    Appointment,
    AppointmentStatus,
    ConsentEvent,
    Enrollment,
    Measure,
    Patient,
    TreatmentPlan,
)
from engage.schedule.catalogue import sequence_names
from engage.schedule.day_list import next_visits
from engage.schedule.enrollments import timeline
from engage.schedule.explain import describe_result
from engage.schedule.patient_changes import set_consent
from engage.schedule.session_numbers import NumberedVisits, number_visits
from engage.web.staff.auth import CurrentStaff, OutcomeRecorder, PatientsEditor
from engage.web.staff.loaders import get_message_for, get_patient_for
from engage.web.staff.pages import Staff, redirect, refusing, render
from engage.web.staff.practitioner_choice import PractitionerChoice, choose_practitioner

router = APIRouter()


@dataclass
class PatientView:
    """What the patient page shows, read in one transaction."""

    patient: Patient
    timezone: str
    consent: dict[str, str]
    consent_history: list[ConsentEvent]
    enrollments: dict[int, list[Enrollment]]
    timeline: list[dict[str, Any]]
    replies: list[Any]
    scores_json: str
    outcomes: list[Any]
    history: list[Any]
    sequences: list[tuple[str, str]] = field(default_factory=list)
    exercises: list[tuple[str, str]] = field(default_factory=list)  # the library: (key, English name)
    visits: dict[int, NumberedVisits] = field(default_factory=dict)  # plan id -> its visits as staff count them
    sessions_json: str = "[]"  # the plan's visits (not cancelled), marked on the pain chart
    next_visit: datetime | None = None
    open_replies: int = 0
    plans: list[TreatmentPlan] = field(default_factory=list)  # those the practitioner filter keeps
    hidden_plans: int = 0  # plans of other practitioners, not shown
    practitioner_names: dict[int, str] = field(default_factory=dict)
    choice: PractitionerChoice | None = None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _whose(plan: TreatmentPlan, visit: Appointment) -> int | None:
    return visit.practitioner_id or plan.practitioner_id


def _visits_of(plan: TreatmentPlan, whose: int | None) -> NumberedVisits:
    """The plan's visits as staff count them (numbered over all of them), only ``whose``'s when given."""
    visits = number_visits(plan.appointments)
    if whose is None:
        return visits
    return NumberedVisits(
        numbered=[(n, a) for n, a in visits.numbered if _whose(plan, a) == whose],
        cancelled=[a for a in visits.cancelled if _whose(plan, a) == whose],
    )


def patient_view(session: Session, staff: Staff, patient_id: int, practitioner: str = "") -> PatientView:
    """Everything the page shows; ``practitioner`` (an id or ``me``): only that practitioner's plans and visits."""
    patient = get_patient_for(session, staff, patient_id)
    choice = choose_practitioner(session, staff, practitioner)
    tz = patient.effective_timezone
    enrollments: dict[int, list[Enrollment]] = {}
    for enrollment in session.scalars(
        select(Enrollment).where(Enrollment.patient_id == patient.id).order_by(Enrollment.id)
    ):
        enrollments.setdefault(enrollment.plan_id, []).append(enrollment)
    outcomes = list_outcomes(session, patient.id, Measure.NPRS)
    replies = replies_of(session, patient.id)
    scores = [{"x": _ms(o.recorded_at), "y": o.score} for o in outcomes]
    sessions = [
        {"x": _ms(a.start_at)}
        for plan in patient.plans
        for a in plan.appointments
        if a.status is not AppointmentStatus.CANCELLED
    ]
    visits = {plan.id: _visits_of(plan, choice.whose) for plan in patient.plans}
    plans = [
        plan
        for plan in patient.plans
        if choice.whose is None
        or plan.practitioner_id == choice.whose
        or visits[plan.id].numbered
        or visits[plan.id].cancelled
    ]
    consent_now = consent_in_force(session, patient.id)
    next_visit = next_visits(session, [patient.id], utcnow()).get(patient.id)
    return PatientView(
        patient=patient,
        timezone=tz,
        consent={channel: given["state"] for channel, given in consent_now.items()},
        consent_history=list(
            session.scalars(
                select(ConsentEvent).where(ConsentEvent.patient_id == patient.id).order_by(ConsentEvent.id.desc())
            )
        ),
        enrollments=enrollments,
        timeline=timeline(session, patient.id),
        replies=replies,
        scores_json=json.dumps(scores),
        sessions_json=json.dumps(sessions),
        next_visit=next_visit,
        open_replies=sum(1 for r in replies if r.flagged and r.handled_at is None),
        outcomes=outcomes,
        history=patient_history(session, patient.id),
        sequences=sorted(sequence_names(session, patient.clinic_id).items()),
        exercises=[(key, exercise.name["en"]) for key, exercise in load_exercises().items()],
        visits=visits,
        plans=plans,
        hidden_plans=len(patient.plans) - len(plans),
        practitioner_names=dict(choice.choices),
        choice=choice,
    )


@router.get("/patients/{patient_id}", response_class=HTMLResponse)
def patient_page(request: Request, staff: CurrentStaff, patient_id: int, practitioner: str = "") -> HTMLResponse:
    """``?practitioner=<id>`` (or ``me``): only that practitioner's plans and visits."""
    with session_scope() as session:
        view = patient_view(session, staff, patient_id, practitioner)
        record_view(session, clinic_id=staff.clinic_id, actor=staff.email, patient_id=patient_id)
        # Rendered inside the session: the page walks plans and appointments lazily.
        return render(
            request, "patient.html", staff, nav="patients", v=view, p=view.patient, **_filter(view, patient_id)
        )


def patient_page_refused(
    request: Request, staff: Staff, patient_id: int, form: dict[str, Any], errors: dict[str, str]
) -> HTMLResponse:
    """The patient page again (400) with a refused plan form: what was typed, and each error beside its field
    (``errors["form"]``: above the form). For a plain ``def`` route: it reads the database."""
    with session_scope() as session:
        view = patient_view(session, staff, patient_id)
        return render(
            request,
            "patient.html",
            staff,
            status_code=400,
            nav="patients",
            v=view,
            p=view.patient,
            plan_form=form,
            plan_errors=errors,
            **_filter(view, patient_id),
        )


def _filter(view: PatientView, patient_id: int) -> dict[str, Any]:
    """The practitioner filter's template variables (it sends the page back to itself, at the plans)."""
    assert view.choice is not None
    return {**view.choice.context(), "filter_action": f"/patients/{patient_id}", "filter_label": "Show the plans of"}


@router.post("/patients/{patient_id}/consent")
def patient_consent(
    staff: PatientsEditor,
    patient_id: int,
    channel: Annotated[str, Form()] = "",
    state: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    back = f"/patients/{patient_id}#consent"
    with refusing("Consent not changed", back), session_scope() as session:
        patient = get_patient_for(session, staff, patient_id)
        _, result = set_consent(session, patient, channel, state, reason=reason, actor=staff.email)
    return redirect(back, f"{channel.upper()} consent recorded: {state.replace('_', ' ')}; {describe_result(result)}.")


@router.post("/patients/{patient_id}/outcomes")
def patient_outcome(staff: OutcomeRecorder, patient_id: int, score: Annotated[str, Form()] = "") -> Response:
    back = f"/patients/{patient_id}#replies"
    with refusing("Pain score not recorded", back), session_scope() as session:
        patient = get_patient_for(session, staff, patient_id)
        outcome = record_staff_outcome(session, patient.id, score, actor=staff.email)
        notice = f"Pain score {outcome.score} recorded."
    return redirect(back, notice)


@router.get("/patients/{patient_id}/messages/{message_id}/body", response_class=HTMLResponse)
def message_body(request: Request, staff: CurrentStaff, patient_id: int, message_id: int) -> HTMLResponse:
    """The message's text as the patient gets (or got) it, rendered now: an htmx fragment."""
    return render(
        request, "_message_body.html", staff, body=_body(staff, patient_id, message_id), message_id=message_id
    )


def _body(staff: Staff, patient_id: int, message_id: int) -> dict[str, Any]:
    with session_scope() as session:
        message = get_message_for(session, staff, message_id)
        if message.patient_id != patient_id:
            raise HTTPException(status_code=404, detail="not found")  # not this patient's message
        try:
            ready = render_message(session, message)
        except TemplateError as exc:
            return {"error": str(exc)}
        payload = ready.payload
        if isinstance(payload, OutgoingSms):
            return {"sms": payload.body, "segments": ready.segments}
        return {"subject": payload.subject, "text": payload.text}
