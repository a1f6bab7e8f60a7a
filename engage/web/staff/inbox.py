"""``/inbox``: patient replies waiting for a person, oldest first; mark one handled with a note."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from engage.conversation.inbox import inbox, mark_handled
from engage.db import session_scope
from engage.errors import InvalidInput
from engage.records.models import Patient
from engage.records.roles import Action
from engage.web.staff.auth import CurrentStaff, require
from engage.web.staff.loaders import get_reply_for
from engage.web.staff.pages import redirect, render

router = APIRouter()


@router.get("/inbox", response_class=HTMLResponse)
async def inbox_page(request: Request, staff: CurrentStaff) -> HTMLResponse:
    def load() -> HTMLResponse:
        with session_scope() as session:
            replies = inbox(session, staff.clinic_id)
            patients = {r.patient_id: session.get(Patient, r.patient_id) for r in replies if r.patient_id}
            return render(request, "inbox.html", staff, nav="inbox", replies=replies, patients=patients)

    return await run_in_threadpool(load)


@router.post("/inbox/{reply_id}/handled")
async def handled(staff: CurrentStaff, reply_id: int, note: Annotated[str, Form()] = "") -> Response:
    def save() -> str:
        with session_scope() as session:
            reply = get_reply_for(session, staff, reply_id)
            require(staff, Action.HANDLE_REPLIES)
            mark_handled(session, reply, note, actor=staff.email)
            return "Reply marked handled."

    try:
        notice = await run_in_threadpool(save)
    except InvalidInput as exc:
        notice = f"Reply not changed: {exc}."
    return redirect("/inbox", notice)
