"""``/``: Today. The day's and tomorrow's visits in the clinic's time zone, what needs a person (with names and
visit dates), the counts of the day by the real clock, and a red banner when nothing is being sent."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from engage.clock import utcnow
from engage.db import session_scope
from engage.delivery import overview
from engage.delivery.heartbeat import last_tick
from engage.records.models import Patient
from engage.schedule import appointments
from engage.schedule.day_list import Visit, day_bounds, next_visits, visits_between
from engage.web.staff.auth import CurrentStaff, PlansEditor
from engage.web.staff.loaders import get_appointment_for
from engage.web.staff.pages import Staff, redirect, refusing, render
from engage.web.staff.practitioner_choice import choose_practitioner
from engage.web.staff.visit_rows import visit_rows

router = APIRouter()


@dataclass
class Day:
    """One local day's visits."""

    label: str  # "Today" / "Tomorrow"
    day: date
    visits: list[Visit]


def _facts(staff: Staff, practitioner: str = "") -> dict[str, Any]:
    now = utcnow()
    today = now.astimezone(ZoneInfo(staff.timezone)).date()
    with session_scope() as session:
        counts = overview.today(session, staff.clinic_id, now, waiting=staff.inbox_waiting)
        choice = choose_practitioner(session, staff, practitioner)
        tomorrow = today + timedelta(days=1)
        start, _ = day_bounds(today, staff.timezone)
        split, end = day_bounds(tomorrow, staff.timezone)
        both = visits_between(session, staff.clinic_id, start, end, staff.timezone, practitioner_id=choice.whose)
        # By start time: tomorrow's begin at the first visit from midnight on (one search, not 600 comparisons
        # of a UTC time with a local one).
        cut = bisect_left(both, split.astimezone(UTC), key=lambda v: v.start_at)
        days = [Day("Today", today, both[:cut]), Day("Tomorrow", tomorrow, both[cut:])]
        patient_ids = [r.patient_id for r in counts.flagged_replies if r.patient_id]
        upcoming = next_visits(session, patient_ids, now)
        down = last_tick(now, session=session).stale
        names = {
            pid: f"{first} {last}"
            for pid, first, last in session.execute(
                select(Patient.id, Patient.first_name, Patient.last_name).where(Patient.id.in_(patient_ids))
            )
        }
    return {
        "today": counts,
        "days": days,
        "next_visit": upcoming,
        "names": names,
        "down": down,
        **choice.context(),
        "visit_rows": visit_rows,
    }


@router.get("/", response_class=HTMLResponse)
def today_page(request: Request, staff: CurrentStaff, practitioner: str = "") -> HTMLResponse:
    """``?practitioner=<id>`` (or ``me``): only that practitioner's visits."""
    return render(request, "today.html", staff, nav="today", **_facts(staff, practitioner))


@router.post("/appointments/{appointment_id}/confirm")
def confirm_visit(staff: PlansEditor, appointment_id: int) -> Response:
    """Staff confirmed the visit with the patient (a call, at the desk)."""
    with session_scope() as session:
        get_appointment_for(session, staff, appointment_id)
        with refusing("Visit not confirmed", "/"):
            appointment = appointments.confirm_appointment(session, appointment_id, actor=staff.email)
            patient = appointment.plan.patient
            notice = f"Visit of {patient.first_name} {patient.last_name} confirmed by {staff.email}."
    return redirect("/", notice)
