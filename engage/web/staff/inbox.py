"""``/inbox``: patient replies waiting for a person, oldest first; mark one handled with a note."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from engage.conversation.inbox import inbox, mark_handled
from engage.db import session_scope
from engage.records.models import Patient
from engage.web.staff.auth import CurrentStaff, ReplyHandler
from engage.web.staff.loaders import get_reply_for
from engage.web.staff.pages import redirect, refusing, render

router = APIRouter()


@router.get("/inbox", response_class=HTMLResponse)
def inbox_page(request: Request, staff: CurrentStaff) -> HTMLResponse:
    with session_scope() as session:
        replies = inbox(session, staff.clinic_id)
        patients = {r.patient_id: session.get(Patient, r.patient_id) for r in replies if r.patient_id}
        return render(request, "inbox.html", staff, nav="inbox", replies=replies, patients=patients)


@router.post("/inbox/{reply_id}/handled")
def handled(staff: ReplyHandler, reply_id: int, note: Annotated[str, Form()] = "") -> Response:
    with refusing("Reply not changed", "/inbox"), session_scope() as session:
        mark_handled(session, get_reply_for(session, staff, reply_id), note, actor=staff.email)
    return redirect("/inbox", "Reply marked handled.")
