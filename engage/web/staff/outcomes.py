"""``/outcomes``: the clinic's results (practitioners and admins), its CSV export, and the desk's baseline form
on the patient page (``POST /patients/{id}/baseline``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from engage.conversation.measures import record_psfs, record_score
from engage.db import session_scope
from engage.errors import InvalidInput
from engage.outcomes.export import episodes_csv
from engage.outcomes.summary import ACT_ON_NAMED, Filters, load_episodes, outcome_summary, parse_filters
from engage.records.models import Clinic, Patient
from engage.records.practitioners import list_practitioners
from engage.records.roles import Action
from engage.schedule.sequences import load_sequences
from engage.web.staff.auth import staff_may
from engage.web.staff.loaders import get_patient_for
from engage.web.staff.outcome_charts import pain_chart, responder_chart
from engage.web.staff.pages import Staff, redirect, refusing, render, secure

router = APIRouter()


OutcomesReader = Annotated[Staff, Depends(staff_may(Action.VIEW_OUTCOMES))]
IntakeRecorder = Annotated[Staff, Depends(staff_may(Action.RECORD_INTAKE))]


def _filters(request: Request) -> tuple[Filters, dict[str, str], dict[str, str]]:
    """The filters in the query string, what was typed (to show it again) and a notice per bad field."""
    q = request.query_params
    given = {name: q.get(name, "") for name in ("from", "to", "practitioner", "sequence", "condition", "modality")}
    try:
        filters = parse_filters(
            start=given["from"],
            end=given["to"],
            practitioner=given["practitioner"],
            sequence=given["sequence"],
            condition=given["condition"],
            modality=given["modality"],
        )
    except InvalidInput as exc:
        return Filters(), given, {exc.field or "from": str(exc)}
    return filters, given, {}


@router.get("/outcomes", response_class=HTMLResponse)
def outcomes_page(request: Request, staff: OutcomesReader) -> HTMLResponse:
    filters, given, problems = _filters(request)
    with session_scope() as session:
        practitioners = [(p.id, p.name) for p in list_practitioners(session, staff.clinic_id)]
        summary: dict[str, Any] | None = None
        if not problems:
            try:
                summary = outcome_summary(session, staff.clinic_id, filters, with_names=True)
            except InvalidInput as exc:
                problems = {exc.field or "practitioner": str(exc)}
    return render(
        request,
        "outcomes.html",
        staff,
        nav="outcomes",
        s=summary,
        given=given,
        problems=problems,
        practitioners=practitioners,
        act_on_named=ACT_ON_NAMED,
        sequences=sorted(load_sequences()),
        pain=pain_chart(summary["pain_by_session"]) if summary and summary["pain_by_session"] else None,
        months=responder_chart(summary["responders_by_month"]) if summary and summary["responders_by_month"] else None,
        query=str(request.query_params),
    )


@router.get("/outcomes/episodes.csv")
def outcomes_csv(request: Request, staff: OutcomesReader) -> Response:
    """One row per episode under the page's filters; ``deidentified=1``: no names, ids or exact dates."""
    filters, _, problems = _filters(request)
    deidentified = request.query_params.get("deidentified") == "1"
    with session_scope() as session:
        if problems:
            filters = Filters()
        loaded = load_episodes(session, staff.clinic_id, filters)
        episodes, names = loaded.episodes, loaded.names
        clinic = session.get_one(Clinic, staff.clinic_id)
        people: dict[int, str] = {}
        if not deidentified:
            ids = {e.patient_id for e in episodes}
            people = {
                p.id: f"{p.first_name} {p.last_name}"
                for p in session.scalars(
                    select(Patient).where(Patient.clinic_id == staff.clinic_id, Patient.id.in_(ids))
                )
            }
        text = episodes_csv(
            episodes, timezone=clinic.timezone, practitioners=names, patient_names=people, deidentified=deidentified
        )
    name = "episodes-deidentified.csv" if deidentified else "episodes.csv"
    response = Response(
        text, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
    return secure(response)


@router.post("/patients/{patient_id}/baseline")
def record_baseline(
    staff: IntakeRecorder,
    patient_id: int,
    pain: Annotated[str, Form()] = "",
    at: Annotated[str, Form()] = "",
    activity_1: Annotated[str, Form()] = "",
    rating_1: Annotated[str, Form()] = "",
    activity_2: Annotated[str, Form()] = "",
    rating_2: Annotated[str, Form()] = "",
    activity_3: Annotated[str, Form()] = "",
    rating_3: Annotated[str, Form()] = "",
) -> Response:
    """Pain and PSFS a patient gave at the desk (on paper, or told), with the time taken; all or nothing."""
    ratings = [(a, r) for a, r in ((activity_1, rating_1), (activity_2, rating_2), (activity_3, rating_3)) if a or r]
    with refusing("Baseline not recorded", f"/patients/{patient_id}#baseline"), session_scope() as session:
        patient = get_patient_for(session, staff, patient_id)
        if not pain.strip() and not ratings:
            raise InvalidInput("give a pain score or at least one activity with its rating", field="pain")
        if pain.strip():
            record_score(session, patient.id, pain, actor=staff.email, at=at or None, source="staff")
        if ratings:
            record_psfs(session, patient.id, ratings, actor=staff.email, at=at or None, source="staff")
    return redirect(f"/patients/{patient_id}#baseline", "Baseline recorded.")
