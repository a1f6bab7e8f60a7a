"""``/sequences/{key}/edit``: the clinic admin edits a draft of a sequence (its name, its steps and each step's
texts in every language); other roles read the published sequence on ``/sequences``.

Saving always keeps what was typed (``save_draft``); each problem is a sentence beside its field, and a draft
with problems cannot be published. While a text is typed, htmx asks :func:`text_check` for the text rendered
for a sample patient, its SMS encoding and segments, and the content checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from engage.db import session_scope
from engage.errors import NotFound
from engage.schedule.sequences import load_sequences
from engage.schedule.versions import Draft, discard_draft, get_draft, published_content, save_draft, start_draft
from engage.web.staff.auth import Admin
from engage.web.staff.pages import Staff, redirect, refusing, render
from engage.web.staff.sequence_editor_checks import check_text
from engage.web.staff.sequence_editor_form import (
    ANCHORS,
    VARIABLES,
    StepForm,
    definition_from_form,
    field_problems,
    steps_of,
    text_label,
    texts_of_step,
    with_step_texts,
)

router = APIRouter()

FormList = Annotated[list[str], Form()]


def edit_url(key: str) -> str:
    return f"/sequences/{key}/edit"


def _known(key: str) -> None:
    """Only the library's sequences have a page (a draft always starts from one); else 404."""
    if key not in load_sequences():
        raise HTTPException(status_code=404, detail=f"no sequence {key!r}")


def _problems(draft: Draft) -> dict[str, str]:
    """Every problem of the draft by field, the form's own sentences first (they say what to type)."""
    found = {problem.field: problem.message for problem in draft.problems}
    return {**found, **field_problems(draft.definition)}


_FIELD_WORDS = {
    "offset": "how long",
    "at": "time of day",
    "appointments": "which appointments",
    "urgent": "frequency caps",
    "or_email": "email instead",
    "quiet_hours": "quiet hours",
}


#: Step fields with a field of their own on the page (a sentence about another shows under the step).
_SHOWN = frozenset(
    ("offset", "at", "anchor", "appointments", "channel", "or_email", "priority", "urgent", "quiet_hours")
)


def _step_others(problems: dict[str, str], index: int) -> list[str]:
    prefix = f"steps.{index}"
    return [
        message
        for field, message in problems.items()
        if field == prefix or (field.startswith(prefix + ".") and field.split(".")[2] not in _SHOWN)
    ]


def _problem_list(problems: dict[str, str], steps: list[StepForm]) -> list[tuple[str, str, str]]:
    """``(where, sentence, link)`` for the summary at the top: "Step 5 (stretch), time of day"."""
    keys = {str(step.index): step.key for step in steps}
    listed = []
    for field, message in problems.items():
        parts = field.split(".")
        link = ""
        if parts[0] == "steps" and len(parts) >= 2 and parts[1] in keys:
            name = " ".join(parts[2:]) or "step"
            where = f"Step {int(parts[1]) + 1} ({keys[parts[1]]}), {_FIELD_WORDS.get(name, name)}"
            shown = "caps" if name == "urgent" else name
            link = f"#f-{parts[1]}-{shown}" if shown in _SHOWN | {"caps"} else f"#step-{keys[parts[1]]}"
        elif parts[0] == "texts":
            path = field.removeprefix("texts.")
            where = f"{text_label(path)} ({path})"
        else:
            where = field.capitalize()
            link = "#f-name" if field == "name" else ""
        listed.append((where, message, link))
    return listed


def _page(
    request: Request,
    staff: Staff,
    key: str,
    draft: Draft | None,
    published: Any,
    *,
    adding: dict[str, str] | None = None,
    add_problem: str | None = None,
) -> HTMLResponse:
    """The edit page; ``adding``: the add-a-step form as typed, ``add_problem`` the sentence beside its key."""
    adding = adding or {"key": "", "channel": "sms", "anchor": "appointment.start", "direction": "before"}
    context: dict[str, Any] = {
        "key": key,
        "published": published,
        "draft": draft,
        "adding": adding,
        "add_problem": add_problem,
    }
    if draft is not None:
        problems = _problems(draft)
        steps = steps_of(draft.definition)
        shown: set[str] = set()
        step_texts = []
        for step in steps:
            paths = [
                p for p in texts_of_step(draft.texts, step.channel, step.template, step.or_email) if p not in shown
            ]
            shown.update(paths)
            step_texts.append([(path, text_label(path), draft.texts[path]) for path in paths])
        context.update(
            steps=list(zip(steps, step_texts, [_step_others(problems, step.index) for step in steps], strict=True)),
            problems=problems,
            anchors=ANCHORS,
            variables=VARIABLES,
            problem_list=_problem_list(problems, steps),
        )
    return render(request, "sequence_edit.html", staff, nav="sequences", **context)


@router.get("/sequences/{key}/edit", response_class=HTMLResponse)
def edit_page(request: Request, staff: Admin, key: str) -> HTMLResponse:
    _known(key)
    with session_scope() as session:
        draft = get_draft(session, staff.clinic_id, key)
        published = published_content(session, staff.clinic_id, key)
    return _page(request, staff, key, draft, published)


@router.post("/sequences/{key}/draft/start")
def start(staff: Admin, key: str) -> Response:
    _known(key)
    with refusing("No draft started", edit_url(key)), session_scope() as session:
        # From the clinic's newest version, else the shipped file of the same key.
        start_draft(session, staff.clinic_id, key, actor=staff.email)
    return redirect(edit_url(key), "Draft started: nothing changes for patients until you publish it.")


@dataclass(frozen=True)
class TypedDraft:
    """What the draft form holds as sent: saving it, or adding or removing a step (whose buttons send the
    draft form too, so nothing typed is lost), stores it first."""

    name: str
    fields: dict[str, list[str]]
    text_path: list[str]
    text_source: list[str]

    def save(self, session: Session, clinic_id: int, key: str, draft: Draft, *, actor: str) -> Draft:
        texts = dict(draft.texts)
        # Browsers send a textarea's line ends as CRLF; the files (and the stored texts) use LF.
        texts.update({p: s.replace("\r\n", "\n") for p, s in zip(self.text_path, self.text_source, strict=False)})
        definition = definition_from_form(draft.definition, self.name, self.fields)
        # A step moved to another channel (or given an email instead) gets that channel's texts to write.
        texts = with_step_texts(definition, texts)
        return save_draft(session, clinic_id, key, definition=definition, texts=texts, actor=actor)


def typed_draft(
    name: Annotated[str | None, Form()] = None,
    # not named step_key: the remove route's path has a {step_key} of its own
    step_keys: Annotated[list[str], Form(alias="step_key")] = [],  # noqa: B006 (FastAPI copies defaults)
    anchor: FormList = [],  # noqa: B006
    direction: FormList = [],  # noqa: B006
    offset: FormList = [],  # noqa: B006
    at: FormList = [],  # noqa: B006
    appointments: FormList = [],  # noqa: B006
    channel: FormList = [],  # noqa: B006
    or_email: FormList = [],  # noqa: B006
    priority: FormList = [],  # noqa: B006
    caps: FormList = [],  # noqa: B006
    quiet_hours: FormList = [],  # noqa: B006
    text_path: FormList = [],  # noqa: B006
    text_source: FormList = [],  # noqa: B006
) -> TypedDraft | None:
    """The draft form's fields (one value per step, in page order) when a request carries them, else None (a
    request with the add form's fields alone, e.g. a script's)."""
    if name is None:
        return None
    return TypedDraft(
        name=name,
        fields={
            "step_key": step_keys,
            "anchor": anchor,
            "direction": direction,
            "offset": offset,
            "at": at,
            "appointments": appointments,
            "channel": channel,
            "or_email": or_email,
            "priority": priority,
            "caps": caps,
            "quiet_hours": quiet_hours,
        },
        text_path=text_path,
        text_source=text_source,
    )


@router.post("/sequences/{key}/draft", response_class=HTMLResponse)
def save(staff: Admin, key: str, typed: Annotated[TypedDraft | None, Depends(typed_draft)] = None) -> Response:
    _known(key)
    typed = typed or TypedDraft(name="", fields={}, text_path=[], text_source=[])
    with refusing("Draft not saved", edit_url(key)), session_scope() as session:
        draft = get_draft(session, staff.clinic_id, key)
        if draft is None:
            raise NotFound("there is no draft to save: start one first")
        saved = typed.save(session, staff.clinic_id, key, draft, actor=staff.email)
    count = len(_problems(saved))
    if count:
        notice = f"Draft saved with {count} problem{'s' if count != 1 else ''}: see the sentences beside the fields."
    else:
        notice = "Draft saved. It has no problems: preview it on a patient, then publish."
    return redirect(edit_url(key) + ("#problems" if count else ""), notice)


@router.post("/sequences/{key}/draft/discard")
def discard(staff: Admin, key: str) -> Response:
    _known(key)
    with refusing("Draft not discarded", edit_url(key)), session_scope() as session:
        discard_draft(session, staff.clinic_id, key, actor=staff.email)
    return redirect(edit_url(key), "Draft discarded: the published version stays as it is.")


@router.post("/sequences/{key}/draft/text-check", response_class=HTMLResponse)
def text_check(
    request: Request,
    staff: Admin,
    key: str,
    check: Annotated[int, Form()] = 0,
    text_path: FormList = [],  # noqa: B006
    text_source: FormList = [],  # noqa: B006
) -> HTMLResponse:
    """The live fragment for the ``check``-th text of the form (htmx posts the whole form as it is typed)."""
    _known(key)
    if not 0 <= check < min(len(text_path), len(text_source)):
        raise HTTPException(status_code=422, detail="no such text in the form")
    typed = {p: s.replace("\r\n", "\n") for p, s in zip(text_path, text_source, strict=False)}
    result = check_text(text_path[check], typed[text_path[check]], typed)
    return render(request, "sequence_text_check.html", staff, result=result, n=check)
