"""The patient's exercises page, ``GET /x/{token}``: the exercises their practitioner picked, in their language.

The stretch SMS links here (``engage.content.links.exercises_url``). Same link rules as
the other patient pages (:mod:`engage.web.patient_pages`): a signed token naming the plan,
a forged or stale one gets the same 404 page, privacy headers, and a GET changes nothing.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse

from engage.content.exercises import exercise_page
from engage.content.links import InvalidToken, read_exercises_token
from engage.db import session_scope
from engage.web.patient_pages import PageFacts, dialled, page_language, render

router = APIRouter()


def _page(token: str) -> HTMLResponse:
    try:
        plan_id = read_exercises_token(token)
    except InvalidToken:
        return render("invalid", PageFacts(), status_code=404)
    with session_scope() as session:
        page = exercise_page(session, plan_id)
    if page is None:
        return render("invalid", PageFacts(), status_code=404)
    facts = PageFacts(
        lang=page_language(page["lang"]),
        clinic_name=page["clinic_name"],
        phone_tel=page["phone"],
        phone_display=dialled(page["phone"]),
    )
    return render("exercises", facts, exercises=page["exercises"])


@router.get("/x/{token}")
async def exercises_page(token: str) -> HTMLResponse:
    """The plan's exercises with their steps, hold and repeat, images and when to stop."""
    return await run_in_threadpool(_page, token)
