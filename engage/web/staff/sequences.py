"""``/sequences``: each sequence's steps in plain words, each template previewed in every locale."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from engage.content.previews import preview_all_locales
from engage.schedule.explain import describe_sequence
from engage.schedule.sequences import load_sequences
from engage.web.staff.auth import CurrentStaff
from engage.web.staff.pages import render

router = APIRouter()


@router.get("/sequences", response_class=HTMLResponse)
def sequences_page(request: Request, staff: CurrentStaff) -> HTMLResponse:
    sequences = [
        {
            "sequence": seq,
            "steps": [
                {"step": step, "words": words, "previews": preview_all_locales(step.channel.value, step.template)}
                for step, words in describe_sequence(seq)
            ],
        }
        for _key, seq in sorted(load_sequences().items())
    ]
    return render(request, "sequences.html", staff, nav="sequences", sequences=sequences)
