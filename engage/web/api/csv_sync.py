"""``POST /import/appointments``: the CLI's CSV import over HTTP, for a practice-management export on a schedule."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from engage.config import get_settings
from engage.sync.csv_import import import_appointments, read_file
from engage.web.api.context import IdempotencyKeyHeader, PlansWriter, read, write
from engage.web.api.problems import errors
from engage.web.api.schemas import SyncReportOut

router = APIRouter(tags=["sync"], responses=errors(401, 422))

EXAMPLE = (
    "patient_external_id,first_name,last_name,phone,email,locale,appointment_external_id,start,duration,status,"
    "sequence\n"
    "PMS-10042,Ana,Ruiz,(415) 555-0123,ana@example.com,es,V-881,2026-12-01T09:00,45,booked,dry-needling-sciatica\n"
)


class _Csv(BaseModel):
    """What the Idempotency-Key fingerprint covers: the file's text."""

    text: str


@router.post(
    "/import/appointments",
    summary="Sync appointments (and their patients) from a CSV export",
    response_model=SyncReportOut,
    responses=errors(403, 413),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The CSV file, UTF-8, a header row first",
            "content": {"text/csv": {"schema": {"type": "string"}, "example": EXAMPLE}},
        }
    },
    response_description="What the import did (or would do): created, moved, unchanged, messages changed",
)
def import_csv(
    request: Request,
    caller: PlansWriter,
    data: Annotated[bytes, Body(media_type="text/csv")],
    dry_run: Annotated[bool, Query(description="Check every row and count, write nothing", examples=[True])] = False,
    key: IdempotencyKeyHeader = None,
) -> Any:
    """The columns of `engage import appointments` (see the README), UTF-8, a header row first. Every row
    is checked before anything is written; a 422 lists each bad row (`record`: `line 7`) and why. The same
    file twice changes nothing; a changed start moves the reminders; a row marked cancelled cancels them."""
    text = read_file(data, get_settings().import_max_bytes)

    def work(session: Session) -> dict[str, Any]:
        report = import_appointments(session, caller.clinic_id, text, actor=caller.actor, dry_run=dry_run)
        return {**report.as_dict(), "dry_run": dry_run}

    if dry_run:
        return read(work)
    return write(request, caller, key, _Csv(text=text), work)
