"""Adding and removing a draft's steps on ``/sequences/{key}/edit``, and the texts a step's channel needs.

A new step sends a template named after its key; its texts are made in the draft, one per language and part
(``sms/<key>.txt`` and ``sms/<key>.es.txt``; an email's subject, text and HTML), empty, so the content checks
say what is missing. A key that is not a key, or is another step's, gets a sentence beside the field and the
draft stays as it was.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from engage.content.rendering import PARTS
from engage.db import session_scope
from engage.errors import NotFound
from engage.schedule.sequences import valid_key
from engage.schedule.versions import get_draft, published_content, save_draft
from engage.web.staff.auth import Admin
from engage.web.staff.pages import redirect, refusing
from engage.web.staff.sequence_editor import TypedDraft, _known, _page, edit_url, typed_draft
from engage.web.staff.sequence_editor_form import ANCHORS, offset_text, sends, with_step_texts

router = APIRouter()


def key_problem(definition: dict[str, Any], key: str) -> str | None:
    """A sentence when ``key`` cannot name a new step of ``definition``."""
    if not key:
        return "Give the step a key: the clinic's staff and the audit name it by this, e.g. checkin_day3."
    if len(key) > 60 or not valid_key(key):
        return f"“{key}” is not a key: use lower-case letters, digits, '-' or '_', e.g. checkin_day3."
    if any(isinstance(s, dict) and s.get("key") == key for s in definition.get("steps") or []):
        return f"This sequence already has a step “{key}”: give the new step a key of its own."
    return None


def add_step(definition: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    """``definition`` with a step at its end from the add form's fields; what was typed is kept as typed."""
    result = copy.deepcopy(definition)
    step: dict[str, Any] = {
        "key": fields["key"],
        "channel": fields.get("channel") or "sms",
        "template": fields["key"],
        "anchor": fields.get("anchor") or "appointment.start",
    }
    offset = offset_text(fields.get("direction", "before"), fields.get("offset", ""))
    if offset:
        step["offset"] = offset
    if fields.get("at", "").strip():
        step["at"] = fields["at"].strip()
    # Which visits, as the edit form takes them: "first", "each", "every:3", "first:2", several with commas.
    visits = [a.strip() for a in fields.get("appointments", "").split(",") if a.strip()]
    if visits:
        step["appointments"] = visits[0] if len(visits) == 1 else visits
    result["steps"] = [*(result.get("steps") or []), step]
    return result


def remove_step(definition: dict[str, Any], texts: dict[str, str], key: str) -> tuple[dict[str, Any], dict[str, str]]:
    """``definition`` without the step ``key`` and ``texts`` without the texts no remaining step sends."""
    steps = [s for s in definition.get("steps") or [] if not (isinstance(s, dict) and s.get("key") == key)]
    if len(steps) == len(definition.get("steps") or []):
        raise NotFound(f"the draft has no step {key!r}")
    used = {prefix for s in steps if isinstance(s, dict) for prefix in (f"{c}/{t}." for c, t in sends(s))}
    kept = {p: s for p, s in texts.items() if any(p.startswith(prefix) for prefix in used)}
    return {**definition, "steps": steps}, kept


@router.post("/sequences/{key}/draft/steps", response_class=HTMLResponse)
def add(
    request: Request,
    staff: Admin,
    key: str,
    new_key: Annotated[str, Form()] = "",
    new_channel: Annotated[str, Form()] = "sms",
    new_anchor: Annotated[str, Form()] = "appointment.start",
    new_direction: Annotated[str, Form()] = "before",
    new_offset: Annotated[str, Form()] = "",
    new_at: Annotated[str, Form()] = "",
    new_appointments: Annotated[str, Form()] = "",
    typed: Annotated[TypedDraft | None, Depends(typed_draft)] = None,
) -> Response:
    _known(key)
    fields = {
        "key": new_key.strip(),
        "channel": new_channel if new_channel in PARTS else "sms",
        "anchor": new_anchor if new_anchor in ANCHORS else "appointment.start",
        "direction": new_direction,
        "offset": new_offset,
        "at": new_at,
        "appointments": new_appointments,
    }
    with refusing("Step not added", edit_url(key), NotFound), session_scope() as session:
        draft = get_draft(session, staff.clinic_id, key)
        if draft is None:
            raise NotFound("there is no draft to add a step to: start one first")
        if typed is not None:  # what was typed in the steps above is kept, whether the step is added or not
            draft = typed.save(session, staff.clinic_id, key, draft, actor=staff.email)
        problem = key_problem(draft.definition, fields["key"])
        if problem is None:
            definition = add_step(draft.definition, fields)
            texts = with_step_texts(definition, draft.texts)
            save_draft(session, staff.clinic_id, key, definition=definition, texts=texts, actor=staff.email)
        else:
            published = published_content(session, staff.clinic_id, key)
    if problem is not None:  # the draft is as it was; the form comes back with the sentence beside the key
        page = _page(request, staff, key, draft, published, adding=fields, add_problem=problem)
        page.status_code = 400
        return page
    return redirect(
        edit_url(key) + f"#step-{fields['key']}",
        f"Step {fields['key']} added: write its texts (they are empty), then save the draft.",
    )


@router.post("/sequences/{key}/draft/steps/{step_key}/remove")
def remove(
    staff: Admin, key: str, step_key: str, typed: Annotated[TypedDraft | None, Depends(typed_draft)] = None
) -> Response:
    _known(key)
    with refusing("Step not removed", edit_url(key), NotFound), session_scope() as session:
        draft = get_draft(session, staff.clinic_id, key)
        if draft is None:
            raise NotFound("there is no draft to remove a step from")
        if typed is not None:  # what was typed in the other steps is kept
            draft = typed.save(session, staff.clinic_id, key, draft, actor=staff.email)
        definition, texts = remove_step(draft.definition, draft.texts, step_key)
        save_draft(session, staff.clinic_id, key, definition=definition, texts=texts, actor=staff.email)
    return redirect(edit_url(key), f"Step {step_key} removed from the draft, with its texts.")
