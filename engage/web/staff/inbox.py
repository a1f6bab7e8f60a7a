"""``/inbox``: conversations, one per patient who texted, those waiting for a person first. A thread shows the
patient's texts and ours in order; staff reply from it (through the outbox) or mark it handled with a note."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from engage.clock import utcnow
from engage.conversation.consent import current_consent
from engage.conversation.inbox import mark_handled, waiting_from_unknown_numbers
from engage.conversation.threads import thread, thread_facts, threads, waiting_texts
from engage.db import session_scope
from engage.delivery.staff_replies import is_conversational, reply_to_patient
from engage.errors import InvalidInput
from engage.records.models import Channel
from engage.web.staff.auth import CurrentStaff, ReplyHandler
from engage.web.staff.loaders import get_patient_for, get_reply_for
from engage.web.staff.pages import redirect, refusing, render

router = APIRouter()


@router.get("/inbox", response_class=HTMLResponse)
def inbox_page(request: Request, staff: CurrentStaff) -> HTMLResponse:
    with session_scope() as session:
        rows, total = threads(session, staff.clinic_id)
        unknown = waiting_from_unknown_numbers(session, staff.clinic_id)
        return render(request, "inbox.html", staff, nav="inbox", threads=rows, total=total, unknown=unknown)


@router.get("/inbox/patients/{patient_id}", response_class=HTMLResponse)
def thread_page(request: Request, staff: CurrentStaff, patient_id: int) -> HTMLResponse:
    with session_scope() as session:
        patient = get_patient_for(session, staff, patient_id)
        return render(
            request,
            "thread.html",
            staff,
            nav="inbox",
            p=patient,
            items=thread(session, patient.id),
            consent={c.value: current_consent(session, patient.id, c).value for c in Channel},
            conversational=is_conversational(session, patient.id, utcnow()),
            **thread_facts(session, patient),
        )


@router.post("/inbox/patients/{patient_id}/reply")
def reply(staff: ReplyHandler, patient_id: int, body: Annotated[str, Form()] = "") -> Response:
    back = f"/inbox/patients/{patient_id}"
    with refusing("Reply not sent", f"{back}#reply"), session_scope() as session:
        patient = get_patient_for(session, staff, patient_id)
        reply_to_patient(session, patient, body, actor=staff.email)
    return redirect(f"{back}#reply", "Reply queued: it goes out through the outbox; its status shows in the thread.")


@router.post("/inbox/patients/{patient_id}/handled")
def thread_handled(staff: ReplyHandler, patient_id: int, note: Annotated[str, Form()] = "") -> Response:
    back = f"/inbox/patients/{patient_id}"
    with refusing("Thread not changed", back), session_scope() as session:
        patient = get_patient_for(session, staff, patient_id)
        waiting = waiting_texts(session, patient.id)
        if not waiting:
            raise InvalidInput("nothing in this thread waits for a person")
        for text in waiting:
            mark_handled(session, text, note, actor=staff.email)
        notice = f"Thread of {patient.first_name} {patient.last_name} marked handled."
    return redirect("/inbox", notice)


@router.post("/inbox/{reply_id}/handled")
def handled(staff: ReplyHandler, reply_id: int, note: Annotated[str, Form()] = "") -> Response:
    with refusing("Reply not changed", "/inbox"), session_scope() as session:
        mark_handled(session, get_reply_for(session, staff, reply_id), note, actor=staff.email)
    return redirect("/inbox", "Reply marked handled.")
