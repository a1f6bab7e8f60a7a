"""``/messages``: the clinic's outbox, filtered, a page at a time; ``/inbox``: replies waiting for a person."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.conversation.inbox import inbox, reply_json
from engage.records.lookup import get_in_clinic
from engage.records.models import Patient
from engage.schedule.message_list import list_messages, message_json
from engage.web.api.context import CallerDep, decode_cursor, encode_cursor, read
from engage.web.api.problems import ERRORS
from engage.web.api.schemas import InboxItem, MessageOut, Page

router = APIRouter(tags=["messages"], responses=ERRORS)


@router.get("/messages", response_model=Page[MessageOut], summary="The outbox, newest first")
def get_messages(
    caller: CallerDep,
    status: Annotated[str | None, Query(examples=["failed"], description="scheduled, sent, failed, ...")] = None,
    channel: Annotated[str | None, Query(examples=["sms"])] = None,
    patient_id: int | None = None,
    due_from: Annotated[datetime | None, Query(description="Due at or after (ISO 8601 with offset)")] = None,
    due_to: Annotated[datetime | None, Query(description="Due before")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> Any:
    def work(session: Session) -> dict[str, Any]:
        if patient_id is not None:
            get_in_clinic(session, Patient, patient_id, caller.clinic_id)
        rows = list_messages(
            session, caller.clinic_id, status=status, channel=channel, patient_id=patient_id, due_from=due_from,
            due_to=due_to, before_id=decode_cursor(cursor), limit=limit,
        )
        return {"items": [message_json(m) for m in rows],
                "next_cursor": encode_cursor(rows[-1].id) if len(rows) == limit else None}

    return read(work)


@router.get("/inbox", response_model=list[InboxItem], summary="Patient replies waiting for a person")
def get_inbox(
    caller: CallerDep,
    include_handled: Annotated[bool, Query(description="Also replies already handled")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 200,
) -> Any:
    """Flagged replies (questions, unclear answers), oldest first, with the patient's words."""

    def work(session: Session) -> list[dict[str, Any]]:
        replies = inbox(session, caller.clinic_id, include_handled=include_handled, limit=limit)
        names = {p.id: p for p in session.scalars(select(Patient).where(
            Patient.id.in_({r.patient_id for r in replies if r.patient_id is not None})))}
        return [reply_json(r, names.get(r.patient_id) if r.patient_id else None) for r in replies]

    return read(work)
