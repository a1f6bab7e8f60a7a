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
from engage.web.api.problems import errors
from engage.web.api.schemas import InboxItem, MessageOut, Page

router = APIRouter(tags=["messages"], responses=errors(401, 422))


@router.get("/messages", response_model=Page[MessageOut], summary="The outbox, newest first", responses=errors(404))
def get_messages(
    caller: CallerDep,
    status: Annotated[
        str | None,
        Query(
            examples=["failed"],
            description=(
                "Only this status: scheduled, queued, sending, sent, delivered, undelivered, bounced, failed, "
                "cancelled, skipped, unknown"
            ),
        ),
    ] = None,
    channel: Annotated[str | None, Query(examples=["sms"], description="Only this channel: sms or email")] = None,
    patient_id: Annotated[
        int | None, Query(examples=[42], description="Only this patient's (404 outside the token's clinic)")
    ] = None,
    due_from: Annotated[
        datetime | None,
        Query(description="Due at or after (ISO 8601 with offset)", examples=["2026-12-01T00:00:00-05:00"]),
    ] = None,
    due_to: Annotated[
        datetime | None, Query(description="Due before (ISO 8601 with offset)", examples=["2026-12-08T00:00:00-05:00"])
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Messages per page", examples=[50])] = 50,
    cursor: Annotated[
        str | None, Query(description="`next_cursor` of the previous page", examples=["aWQ6MzA1MQ"])
    ] = None,
) -> Any:
    """The clinic's outbox rows, newest first, filtered as on the staff Messages page. Pages continue below the
    last id seen, so messages planned meanwhile never shift a page."""

    def work(session: Session) -> dict[str, Any]:
        if patient_id is not None:
            get_in_clinic(session, Patient, patient_id, caller.clinic_id)
        rows = list_messages(
            session,
            caller.clinic_id,
            status=status,
            channel=channel,
            patient_id=patient_id,
            due_from=due_from,
            due_to=due_to,
            before_id=decode_cursor(cursor),
            limit=limit,
        )
        return {
            "items": [message_json(m) for m in rows],
            "next_cursor": encode_cursor(rows[-1].id) if len(rows) == limit else None,
        }

    return read(work)


@router.get("/inbox", response_model=list[InboxItem], summary="Patient replies waiting for a person")
def get_inbox(
    caller: CallerDep,
    include_handled: Annotated[bool, Query(description="Also replies already handled", examples=[False])] = False,
    limit: Annotated[int, Query(ge=1, le=200, description="At most this many, oldest first", examples=[50])] = 200,
) -> Any:
    """Flagged replies (questions, unclear answers), oldest first, with the patient's words."""

    def work(session: Session) -> list[dict[str, Any]]:
        replies = inbox(session, caller.clinic_id, include_handled=include_handled, limit=limit)
        names = {
            p.id: p
            for p in session.scalars(
                select(Patient).where(Patient.id.in_({r.patient_id for r in replies if r.patient_id is not None}))
            )
        }
        return [reply_json(r, names.get(r.patient_id) if r.patient_id else None) for r in replies]

    return read(work)
