"""Publishing from the sequence editor: the publish dialog (what a publish does to patients already enrolled,
from a dry run; current patients or new enrollments only) and the version list with roll back. Admins only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from engage.db import session_scope
from engage.schedule.explain import describe_sequence
from engage.schedule.publish import PublishSummary, StalePublish, publish_draft, republish
from engage.schedule.versions import get_draft, list_versions, published_content, rebase_draft
from engage.web.staff.auth import Admin
from engage.web.staff.pages import redirect, refusing, render
from engage.web.staff.sequence_editor import _known, edit_url

router = APIRouter()


def _summary_sentence(summary: PublishSummary) -> str:
    return (
        f"{summary.changed} pending message{'s' if summary.changed != 1 else ''} change time, "
        f"{summary.cancelled} {'are' if summary.cancelled != 1 else 'is'} cancelled, "
        f"{summary.added} {'are' if summary.added != 1 else 'is'} added; already-sent steps are never sent again"
    )


def _stale(key: str, version: int) -> Response:
    """Another admin published first: say so, and show the version now current."""
    return redirect(
        f"/sequences/{key}/versions#v{version}",
        f"Not published: another admin published version {version} while you edited. "
        "Here it is; your draft is kept: look at their version, then keep your draft over it or discard it.",
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
                try:
                    summary = publish_draft(
                        session, staff.clinic_id, key, actor=staff.email, current_patients=True, dry_run=True
                    )
                except StalePublish as exc:
                    return _stale(key, exc.current_version)
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
    with refusing("Not published", f"/sequences/{key}/publish"):
        try:
            with session_scope() as session:
                summary = publish_draft(
                    session, staff.clinic_id, key, actor=staff.email, current_patients=apply_to == "current"
                )
        except StalePublish as exc:  # before refusing() sees it: the answer is the new version, not a notice
            return _stale(key, exc.current_version)
    done = _summary_sentence(summary) if apply_to == "current" else "patients enrolled now keep the version they follow"
    return redirect(f"/sequences/{key}/versions#v{summary.version}", f"Version {summary.version} published: {done}.")


@router.get("/sequences/{key}/versions", response_class=HTMLResponse)
def versions(request: Request, staff: Admin, key: str) -> HTMLResponse:
    _known(key)
    with session_scope() as session:
        found = list_versions(session, staff.clinic_id, key)
        current = published_content(session, staff.clinic_id, key)
        draft = get_draft(session, staff.clinic_id, key)
        stale_base = draft.base_version if draft is not None and draft.base_version != current.version else None
        pairs = [(step.key, words) for step, words in describe_sequence(current.sequence)]
    return render(
        request,
        "sequence_versions.html",
        staff,
        nav="sequences",
        key=key,
        versions=sorted(found, key=lambda v: v.version, reverse=True),
        current=current,
        stale=draft is not None and draft.base_version != current.version,
        stale_base=stale_base,
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
    with refusing("Not rolled back", back), session_scope() as session:
        summary = republish(
            session, staff.clinic_id, key, version, actor=staff.email, current_patients=apply_to == "current"
        )
    return redirect(
        f"/sequences/{key}/versions#v{summary.version}",
        f"Version {version} published again as version {summary.version}: {_summary_sentence(summary)}.",
    )


@router.post("/sequences/{key}/draft/rebase")
def rebase(staff: Admin, key: str) -> Response:
    """The admin who lost a publish race has seen the version now current and keeps their draft over it."""
    _known(key)
    with refusing("Draft not kept", f"/sequences/{key}/versions"), session_scope() as session:
        draft = rebase_draft(session, staff.clinic_id, key, actor=staff.email)
    return redirect(
        f"/sequences/{key}/publish",
        f"Your draft now replaces version {draft.base_version} when published: check what it does, then publish.",
    )
