"""``/sequences``: each sequence as the clinic's patients get it (its published version, else the shipped
file), its steps in plain words, each template previewed in every locale. Admins edit it from here."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from engage.content.previews import preview_all_locales
from engage.content.rendering import as_texts
from engage.db import session_scope
from engage.schedule.explain import describe_sequence
from engage.schedule.sequences import load_sequences
from engage.schedule.versions import published_content
from engage.web.staff.auth import CurrentStaff
from engage.web.staff.pages import render

router = APIRouter()


@router.get("/sequences", response_class=HTMLResponse)
def sequences_page(request: Request, staff: CurrentStaff) -> HTMLResponse:
    with session_scope() as session:
        contents = [published_content(session, staff.clinic_id, key) for key in sorted(load_sequences())]
    sequences = [
        {
            "sequence": content.sequence,
            "version": content.version,
            "steps": [
                {
                    "step": step,
                    "words": words,
                    "previews": preview_all_locales(step.channel.value, step.template, as_texts(content.texts)),
                }
                for step, words in describe_sequence(content.sequence)
            ],
        }
        for content in contents
    ]
    return render(request, "sequences.html", staff, nav="sequences", sequences=sequences)
