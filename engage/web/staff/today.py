"""``/``: Today. Counts of the day, what needs a person, and a red banner when nothing is being sent."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from engage.db import session_scope
from engage.delivery import overview
from engage.delivery.heartbeat import last_tick
from engage.web.staff.auth import CurrentStaff
from engage.web.staff.pages import Staff, render

router = APIRouter()


def _facts(staff: Staff) -> tuple[overview.Today, bool]:
    with session_scope() as session:
        today = overview.today(session, staff.clinic_id)
    return today, last_tick().stale


@router.get("/", response_class=HTMLResponse)
def today_page(request: Request, staff: CurrentStaff) -> HTMLResponse:
    today, down = _facts(staff)
    return render(request, "today.html", staff, nav="today", today=today, down=down)
