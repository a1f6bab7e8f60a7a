"""The sequence editor's second half: the draft previewed on a real patient beside the published version,
the publish dialog (what a publish does to patients already enrolled, from a dry run; current patients or new
enrollments only)and the version list with roll back. Admins only."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from engage.db import session_scope
from engage.records.models import Enrollment, EnrollmentStatus, Patient
from engage.schedule.draft_preview import PreviewRow, preview_for_plan
from engage.schedule.explain import describe_sequence
from engage.schedule.publish import PublishSummary, StalePublish, publish_draft, republish
from engage.schedule.versions import get_draft, list_versions, published_content
from engage.web.staff.auth import Admin
from engage.web.staff.loaders import get_plan_for
from engage.web.staff.pages import redirect, refusing, render
from engage.web.staff.sequence_editor import _known, edit_url

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
        if plan is not None:
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


def _summary_sentence(summary: PublishSummary) -> str:
    return (
        f"{summary.changed} pending message{'s' if summary.changed != 1 else ''} change time, "
        f"{summary.cancelled} {'are' if summary.cancelled != 1 else 'is'} cancelled, "
        f"{summary.added} {'are' if summary.added != 1 else 'is'} added; already-sent steps are never sent again"
    )


@router.get("/sequences/{key}/publish", response_class=HTMLResponse)
def publish_dialog(request: Request, staff: Admin, key: str) -> Response:
    _known(key)
    with session_scope() as session:
        draft = get_draft(session, staff.clinic_id, key)
        if draft is None:
            return redirect(edit_url(key), "There is no draft to publish: start one first.")
        problems = list(draft.problems)
        summary = None
        if not problems:
            with refusing("Not ready to publish", edit_url(key)):
                summary = publish_draft(
                    session, staff.clinic_id, key, actor=staff.email, current_patients=True, dry_run=True
                )
        name = str(draft.definition.get("name") or key)
    return render(
        request,
        "sequence_publish.html",
        staff,
        nav="sequences",
        key=key,
        sequence_name=name,
        problems=problems,
        summary=summary,
        sentence=_summary_sentence(summary) if summary else "",
        action=f"/sequences/{key}/publish",
        title=f"Publish {name}?",
        button="Publish",
    )


@router.post("/sequences/{key}/publish")
def publish(staff: Admin, key: str, apply_to: Annotated[str, Form()] = "") -> Response:
    _known(key)
    if apply_to not in ("current", "new"):
        return redirect(f"/sequences/{key}/publish", "Choose who the new version applies to.")
    try:
        with refusing("Not published", f"/sequences/{key}/publish"), session_scope() as session:
            summary = publish_draft(
                session, staff.clinic_id, key, actor=staff.email, current_patients=apply_to == "current"
            )
    except StalePublish as exc:
        return redirect(
            f"/sequences/{key}/versions#v{exc.current_version}",
            f"Not published: another admin published version {exc.current_version} while you edited. "
            "Here it is; your draft is kept: look at their changes, then publish again if yours still apply.",
        )
    done = _summary_sentence(summary) if apply_to == "current" else "patients enrolled now keep the version they follow"
    return redirect(f"/sequences/{key}/versions#v{summary.version}", f"Version {summary.version} published: {done}.")


@router.get("/sequences/{key}/versions", response_class=HTMLResponse)
def versions(request: Request, staff: Admin, key: str) -> HTMLResponse:
    _known(key)
    with session_scope() as session:
        found = list_versions(session, staff.clinic_id, key)
        current = published_content(session, staff.clinic_id, key)
        pairs = [(step.key, words) for step, words in describe_sequence(current.sequence)]
    return render(
        request,
        "sequence_versions.html",
        staff,
        nav="sequences",
        key=key,
        versions=sorted(found, key=lambda v: v.version, reverse=True),
        current=current,
        pairs=pairs,
    )


@router.get("/sequences/{key}/versions/{version}/roll-back", response_class=HTMLResponse)
def roll_back_dialog(request: Request, staff: Admin, key: str, version: int) -> HTMLResponse:
    _known(key)
    with refusing("No roll back", f"/sequences/{key}/versions"), session_scope() as session:
        summary = republish(
            session, staff.clinic_id, key, version, actor=staff.email, current_patients=True, dry_run=True
        )
        name = published_content(session, staff.clinic_id, key).sequence.name
    return render(
        request,
        "sequence_publish.html",
        staff,
        nav="sequences",
        key=key,
        sequence_name=name,
        problems=[],
        summary=summary,
        sentence=_summary_sentence(summary),
        action=f"/sequences/{key}/versions/{version}/roll-back",
        title=f"Roll back to version {version}?",
        button=f"Publish version {version} again",
    )


@router.post("/sequences/{key}/versions/{version}/roll-back")
def roll_back(staff: Admin, key: str, version: int, apply_to: Annotated[str, Form()] = "") -> Response:
    _known(key)
    back = f"/sequences/{key}/versions/{version}/roll-back"
    if apply_to not in ("current", "new"):
        return redirect(back, "Choose who the rolled-back version applies to.")
    try:
        with refusing("Not rolled back", back), session_scope() as session:
            summary = republish(
                session, staff.clinic_id, key, version, actor=staff.email, current_patients=apply_to == "current"
            )
    except StalePublish as exc:
        return redirect(
            f"/sequences/{key}/versions#v{exc.current_version}",
            f"Not rolled back: another admin published version {exc.current_version} meanwhile. Here it is.",
        )
    return redirect(
        f"/sequences/{key}/versions#v{summary.version}",
        f"Version {version} published again as version {summary.version}: {_summary_sentence(summary)}.",
    )
