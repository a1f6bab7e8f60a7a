"""``/q/{token}``: the intake questionnaire a patient opens before the first visit (from the what-to-expect
email and the welcome text): pain now (NPRS 0-10) and up to three activities they find hard, each rated 0-10
(the Patient-Specific Functional Scale), and, optionally, the Keele STarT Back Tool's nine questions where the
clinic installed its licensed wording (:mod:`engage.conversation.start_back`), in the patient's language, usable
on a 360 px phone.

A GET only shows the form (mail scanners follow links); a POST records the answers as one baseline, all or
nothing: a bad answer re-shows the form with a sentence beside what to fix (400) and records nothing. Sending
it again records a newer baseline; the one nearest the first session counts. The token carries the patient id
only; a forged one gets the same 404 page as the other patient pages.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse

from engage.content.links import InvalidToken, read_intake_token
from engage.conversation import start_back
from engage.conversation.measures import PSFS_ITEMS, record_psfs, record_score, score_value
from engage.db import session_scope
from engage.errors import InvalidInput
from engage.web.patient_pages import PageFacts, page_facts, render

log = logging.getLogger(__name__)
router = APIRouter()
HIGH = 8
_NOTES = {
    "pain": {
        "en": "Choose how much pain you have now, from 0 to 10.",
        "es": "Elija cuánto dolor tiene ahora, del 0 al 10.",
    },
    "rating": {
        "en": "Rate each activity you wrote from 0 to 10.",
        "es": "Califique del 0 al 10 cada actividad que escribió.",
    },
    "item": {
        "en": "Write the activity you rated, in a few words.",
        "es": "Escriba en pocas palabras la actividad que calificó.",
    },
    "start_back": {
        "en": "Answer all nine questions about your back, or leave them all empty.",
        "es": "Responda las nueve preguntas sobre su espalda, o déjelas todas sin responder.",
    },
}


def _patient(token: str) -> int | None:
    try:
        return read_intake_token(token)
    except InvalidToken:
        return None


@router.get("/q/{token}")
async def intake_form(token: str) -> HTMLResponse:
    """The questionnaire; records nothing."""
    patient_id = _patient(token)
    if patient_id is None:
        return render("invalid", PageFacts(), status_code=404)

    def page() -> HTMLResponse:
        with session_scope() as session:
            facts = page_facts(session, patient_id)
        if facts is None:
            return render("invalid", PageFacts(), status_code=404)
        return render("intake", facts, given=_empty(), notes={}, start_back=start_back.wording(facts.lang))

    return await run_in_threadpool(page)


def _empty() -> dict[str, Any]:
    return {"pain": "", "activities": [("", "")] * PSFS_ITEMS, "start_back": [""] * start_back.ITEMS}


@router.post("/q/{token}")
async def intake_answer(token: str, request: Request) -> HTMLResponse:
    """Record pain and the PSFS activities; the form again, with what to fix, for a bad answer."""
    form = await request.form()
    patient_id = _patient(token)
    if patient_id is None:
        return render("invalid", PageFacts(), status_code=404)
    pain = str(form.get("pain") or "")
    activities = [
        (str(form.get(f"activity_{n}") or "").strip()[:100], str(form.get(f"rating_{n}") or ""))
        for n in range(1, PSFS_ITEMS + 1)
    ]
    screening = [str(form.get(f"sb_{n}") or "").strip() for n in range(1, start_back.ITEMS + 1)]
    return await run_in_threadpool(_record, patient_id, pain, activities, screening)


def _problems(pain: str, activities: list[tuple[str, str]], screening: list[str]) -> dict[str, str]:
    problems: dict[str, str] = {}
    if any(screening):
        try:
            start_back.check_answers(screening)
        except InvalidInput:
            problems["start_back"] = "start_back"
    try:
        score_value(pain)
    except InvalidInput:
        problems["pain"] = "pain"
    for n, (name, rating) in enumerate(activities, start=1):
        if name and not rating:
            problems[f"rating_{n}"] = "rating"
        elif rating and not name:
            problems[f"activity_{n}"] = "item"
        elif rating:
            try:
                score_value(rating)
            except InvalidInput:
                problems[f"rating_{n}"] = "rating"
    return problems


def _record(patient_id: int, pain: str, activities: list[tuple[str, str]], screening: list[str]) -> HTMLResponse:
    with session_scope() as session:
        facts = page_facts(session, patient_id)
        if facts is None:
            return render("invalid", PageFacts(), status_code=404)
        wording = start_back.wording(facts.lang)
        if wording is None:
            screening = [""] * start_back.ITEMS  # not asked in this language: nothing to record
        problems = _problems(pain, activities, screening)
        if problems:
            notes = {field: _NOTES[kind][facts.lang] for field, kind in problems.items()}
            given = {"pain": pain, "activities": activities, "start_back": screening}
            return render("intake", facts, status_code=400, given=given, notes=notes, start_back=wording)
        actor = f"patient:{patient_id}"
        score = record_score(session, patient_id, pain, actor=actor, source="intake")
        rated = [(name, rating) for name, rating in activities if name]
        if rated:
            record_psfs(session, patient_id, rated, actor=actor, source="intake")
        if any(screening):
            start_back.record(session, patient_id, screening, actor=actor, source="intake")
        log.info("intake answers recorded for patient %s", patient_id)
    return render("intake-thanks", facts, score=score.score, high=score.score >= HIGH, activities=len(rated))
