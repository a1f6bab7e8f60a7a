"""``/sequences/{key}/preview``: the draft previewed on a real patient with a plan, beside the published
version: the exact local send times and texts of each, the differences marked in words."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from engage.db import session_scope
from engage.records.models import Enrollment, EnrollmentStatus, Patient
from engage.schedule.draft_preview import PreviewRow, preview_for_plan
from engage.schedule.versions import get_draft
from engage.web.staff.auth import Admin
from engage.web.staff.loaders import get_plan_for
from engage.web.staff.pages import refusing, render
from engage.web.staff.sequence_editor import _known

router = APIRouter()


@dataclass(frozen=True)
class ShownRow:
    row: PreviewRow
    change: str  # "" | "time changes" | "text changes" | "time and text change" | "added" | "cancelled"
    words: list[tuple[str, str]]  # the draft's text against the published one: ("same"|"ins"|"del", text)


def _words(before: str | None, after: str | None) -> list[tuple[str, str]]:
    old, new = (before or "").split(" "), (after or "").split(" ")
    out: list[tuple[str, str]] = []
    for op, a1, a2, b1, b2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("same", " ".join(old[a1:a2])))
            continue
        if a2 > a1:
            out.append(("del", " ".join(old[a1:a2])))
        if b2 > b1:
            out.append(("ins", " ".join(new[b1:b2])))
    return out


_CHANGES = {(True, True): "time and text change", (True, False): "time changes", (False, True): "text changes"}


def _shown(row: PreviewRow) -> ShownRow:
    if row.published_at is None and row.draft_at is not None:
        change = "added"
    elif row.draft_at is None and row.published_at is not None:
        change = "cancelled"
    else:
        moved = row.draft_at != row.published_at
        reworded = (row.draft_text or "") != (row.published_text or "")
        change = _CHANGES.get((moved, reworded), "")
    return ShownRow(row, change, _words(row.published_text, row.draft_text))


def _enrolled(session: Any, clinic_id: int, key: str) -> list[tuple[int, str]]:
    """``(plan id, "Ruiz, Ana: sciatica, dry needling")`` for the plans enrolled in ``key`` now."""
    rows = session.execute(
        select(Enrollment.plan_id, Patient.last_name, Patient.first_name)
        .join(Patient, Patient.id == Enrollment.patient_id)
        .where(
            Patient.clinic_id == clinic_id,
            Enrollment.sequence_key == key,
            Enrollment.status.in_((EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED)),
        )
        .order_by(Patient.last_name, Patient.first_name, Enrollment.plan_id)
        .limit(500)
    ).all()
    return [(plan_id, f"{last}, {first} (plan {plan_id})") for plan_id, last, first in rows]


@router.get("/sequences/{key}/preview", response_class=HTMLResponse)
def preview(request: Request, staff: Admin, key: str, plan: int | None = None) -> HTMLResponse:
    _known(key)
    rows: list[ShownRow] = []
    patient_name, tz = "", staff.timezone
    with session_scope() as session:
        choices = _enrolled(session, staff.clinic_id, key)
        has_draft = get_draft(session, staff.clinic_id, key) is not None
        if plan is not None and has_draft:
            record = get_plan_for(session, staff, plan)
            patient_name = f"{record.patient.first_name} {record.patient.last_name}"
            tz = record.patient.effective_timezone
            with refusing("No preview", f"/sequences/{key}/preview"):
                rows = [_shown(row) for row in preview_for_plan(session, plan, key)]
    return render(
        request,
        "sequence_preview.html",
        staff,
        nav="sequences",
        key=key,
        choices=choices,
        plan=plan,
        rows=rows,
        patient_name=patient_name,
        tz=tz,
        has_draft=has_draft,
    )
