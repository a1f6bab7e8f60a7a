"""``/messages``: every message of the clinic, filtered, with a CSV export; and resolving a stuck one."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from engage.db import session_scope
from engage.delivery.overview import MessageFilter, list_messages, messages_csv
from engage.delivery.resolve import resolve_message
from engage.errors import InvalidInput
from engage.records.audit import record_export
from engage.records.models import Channel, Clinic, MessageStatus
from engage.web.staff.auth import CurrentStaff, MessageResolver
from engage.web.staff.loaders import get_message_for
from engage.web.staff.pages import redirect, refusing, render, secure
from engage.web.staff.practitioner_choice import choose_practitioner

router = APIRouter()
PER_PAGE = 50


@router.get("/messages", response_class=HTMLResponse)
def message_list(
    request: Request,
    staff: CurrentStaff,
    status: str = "",
    channel: str = "",
    template: str = "",
    date_from: str = "",
    date_to: str = "",
    practitioner: str = "",
    page: int = 1,
) -> HTMLResponse:
    """``?practitioner=<id>`` (or ``me``): only the messages about that practitioner's visits and plans."""
    values = {"status": status, "channel": channel, "template": template, "date_from": date_from, "date_to": date_to}
    with session_scope() as session:
        clinic = session.get_one(Clinic, staff.clinic_id)
        choice = choose_practitioner(session, staff, practitioner)
        try:
            flt = replace(MessageFilter.parse(**values), practitioner_id=choice.whose)
            rows, total = list_messages(session, clinic, flt, page=max(page, 1), per_page=PER_PAGE)
            error = None
        except InvalidInput as exc:
            rows, total, error = [], 0, str(exc)
        query = urlencode({k: v for k, v in {**values, "practitioner": choice.wanted}.items() if v})
        return render(
            request,
            "messages.html",
            staff,
            nav="messages",
            rows=rows,
            total=total,
            error=error,
            values=values,
            page=max(page, 1),
            pages=max(1, -(-total // PER_PAGE)),
            query=query,
            statuses=[s.value for s in MessageStatus],
            channels=[c.value for c in Channel],
            status_code=400 if error else 200,
            **choice.context(),
        )


@router.get("/messages.csv")
def message_csv(
    staff: CurrentStaff,
    status: str = "",
    channel: str = "",
    template: str = "",
    date_from: str = "",
    date_to: str = "",
    practitioner: str = "",
) -> Response:
    try:
        flt = MessageFilter.parse(status, channel, template, date_from, date_to)
    except InvalidInput as exc:
        return Response(str(exc), status_code=400, media_type="text/plain")

    with session_scope() as session:
        choice = choose_practitioner(session, staff, practitioner)
        if choice.problem:
            return Response(choice.problem.split(":")[0], status_code=400, media_type="text/plain")
        flt = replace(flt, practitioner_id=choice.whose)
        record_export(
            session,
            clinic_id=staff.clinic_id,
            actor=staff.email,
            what="messages",
            status=status,
            channel=channel,
            template=template,
            date_from=date_from,
            date_to=date_to,
            practitioner=practitioner,
        )

    def chunks():  # type: ignore[no-untyped-def]
        with session_scope() as session:
            yield from messages_csv(session, session.get_one(Clinic, staff.clinic_id), flt)

    name = f"messages-{datetime.now():%Y%m%d-%H%M}.csv"
    response = StreamingResponse(
        chunks(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
    secure(response)
    return response


def _back(url: str) -> str:
    return url if url.startswith("/") and not url.startswith("//") else "/"


@router.post("/messages/{message_id}/resolve")
def resolve(
    staff: MessageResolver,
    message_id: int,
    action: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "/",
) -> Response:
    with refusing(f"Message {message_id} not changed", _back(back)), session_scope() as session:
        message = get_message_for(session, staff, message_id)
        done = resolve_message(session, message, action, reason, actor=staff.email)
        notice = f"Message {message_id} is now {done.status.value}."
    return redirect(_back(back), notice)
