"""Pages patients open from their messages: unsubscribe (``/u/{token}``) and the reassessment answer (``/r/{token}``).

Tokens are signed (``engage.content.links``); a forged, altered or wrong-purpose token gets
the same 404 page as a token for a record that no longer exists, and that page says
nothing about any patient, address or number.

Unsubscribe follows RFC 8058: ``GET`` shows a confirmation page with one button (mail
scanners follow GET links, so GET never unsubscribes); ``POST`` (the button, or a mail
client's one-click ``List-Unsubscribe=One-Click``) unsubscribes at once, no login and no
further step. Unsubscribing again changes nothing.

Reassessment: ``GET /r/{token}`` never records anything either (a mail scanner opens all
eleven score links of an email): it shows the 0-10 form, with ``?score=N`` pre-selected
and a button that POSTs it. ``POST`` records the answer, if the prompt was sent and is
within its answer window (see ``engage.conversation.outcomes``); a later answer becomes
the outcome, so a mis-click can be corrected. A closed prompt gets a page saying so (410).

Pages are rendered in the same sandbox as messages (``engage.content.pages``), in the
patient's language (``<html lang>``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse

from engage.content.links import InvalidToken, read_reassessment_token, read_unsubscribe_token
from engage.content.pages import render_page
from engage.content.rendering import TemplateError
from engage.conversation.consent import current_consent, record_consent
from engage.conversation.outcomes import PromptClosed, is_open, is_prompt, record_outcome
from engage.db import session_scope
from engage.records.models import Channel, Clinic, ConsentState, Message, Patient

log = logging.getLogger(__name__)
router = APIRouter()

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the URL; never hand it to another site
    "X-Robots-Tag": "noindex",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
}
_DIGITS = re.compile(r"[0-9]{1,2}")
_CHANNEL_WORDS = {Channel.EMAIL: "emails", Channel.SMS: "text messages"}


_BROKEN_PAGE = "<!DOCTYPE html><html lang=\"en\"><title>Error</title><p>Something went wrong. Please try again later."


def render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """An HTML page from ``templates/web/<name>`` (sandboxed, autoescaped) with the privacy headers.

    A broken template gives a plain 500 page; the log names the file and line, never patient data.
    """
    try:
        html = render_page(name, context)
    except TemplateError as exc:
        log.error("patient page template failed: %s", exc)
        return HTMLResponse(_BROKEN_PAGE, status_code=500, headers=_HEADERS)
    return HTMLResponse(html, status_code=status_code, headers=_HEADERS)


def _invalid() -> HTMLResponse:
    return render("invalid.html", status_code=404, clinic_name=None)


def _clinic_name(session: Any, patient_id: int) -> str | None:
    patient = session.get(Patient, patient_id)
    clinic = session.get(Clinic, patient.clinic_id) if patient else None
    return clinic.name if clinic else None


def _lang(session: Any, patient_id: int) -> str:
    patient = session.get(Patient, patient_id)
    return (patient.locale if patient and patient.locale else "en").split("-")[0]


# --- unsubscribe -------------------------------------------------------------------------------


def _unsubscribe_target(token: str) -> tuple[int, Channel] | None:
    try:
        patient_id, channel = read_unsubscribe_token(token)
        return patient_id, Channel(channel)
    except (InvalidToken, ValueError):
        return None


@router.get("/u/{token}")
async def unsubscribe_page(token: str) -> HTMLResponse:
    """The confirmation page with one button; changes nothing."""
    target = _unsubscribe_target(token)
    if target is None:
        return _invalid()

    def page() -> HTMLResponse:
        with session_scope() as session:
            name, lang = _clinic_name(session, target[0]), _lang(session, target[0])
        return render("unsubscribe.html", clinic_name=name, lang=lang, channel_words=_CHANNEL_WORDS[target[1]])

    return await run_in_threadpool(page)


@router.post("/u/{token}")
async def unsubscribe(token: str, request: Request) -> HTMLResponse:
    """Unsubscribe the token's patient from the token's channel (RFC 8058 one-click or the button)."""
    await request.body()  # read (and size-limit) the body; its content, if any, asks for the same thing
    target = _unsubscribe_target(token)
    if target is None:
        return _invalid()
    patient_id, channel = target

    def act() -> HTMLResponse:
        with session_scope() as session:
            name, lang = _clinic_name(session, patient_id), _lang(session, patient_id)
            # A deleted patient gets the same answer: the page reveals nothing either way.
            if name is not None and current_consent(session, patient_id, channel) is not ConsentState.OPTED_OUT:
                record_consent(session, patient_id, channel, ConsentState.OPTED_OUT, "unsubscribe_link")
                log.info("patient %s unsubscribed from %s by link", patient_id, channel.value)
        return render("unsubscribed.html", clinic_name=name, lang=lang, channel_words=_CHANNEL_WORDS[channel])

    return await run_in_threadpool(act)


# --- reassessment ------------------------------------------------------------------------------


def _score(value: Any) -> int | None:
    text = str(value).strip() if value is not None else ""
    if not _DIGITS.fullmatch(text):  # not str.isdigit(): "²" is a digit to it, and int() refuses it
        return None
    score = int(text)
    return score if 0 <= score <= 10 else None


@router.get("/r/{token}")
async def reassessment_get(token: str, request: Request) -> HTMLResponse:
    """The 0-10 form, with ``?score=N`` pre-selected and one button to send it; records nothing."""
    raw = request.query_params.get("score")
    return await run_in_threadpool(_answer, token, raw, False)


@router.post("/r/{token}")
async def reassessment_post(token: str, request: Request) -> HTMLResponse:
    """Record the form's answer (field ``score``; falls back to ``?score=`` in the URL) and thank."""
    form = await request.form()
    raw = form.get("score") if "score" in form else request.query_params.get("score")
    return await run_in_threadpool(_answer, token, raw, True)


def _answer(token: str, raw: Any, record: bool) -> HTMLResponse:
    try:
        message_id = read_reassessment_token(token)
    except InvalidToken:
        return _invalid()
    with session_scope() as session:
        prompt = session.get(Message, message_id)
        if prompt is None or not is_prompt(prompt):
            return _invalid()
        page = {"clinic_name": _clinic_name(session, prompt.patient_id), "lang": _lang(session, prompt.patient_id)}
        if not is_open(prompt):
            return render("closed.html", status_code=410, **page)
        score = _score(raw)
        if score is None or not record:
            note = "Please choose a whole number from 0 to 10." if raw not in (None, "") and score is None else None
            return render("reassessment.html", status_code=400 if note else 200, note=note, selected=score, **page)
        source = "email" if prompt.channel is Channel.EMAIL else "web"
        try:
            record_outcome(session, prompt, score, source=source)
        except PromptClosed:  # the window closed between the check and now
            return render("closed.html", status_code=410, **page)
        log.info("reassessment answer recorded for message %s", prompt.id)
    return render("thanks.html", score=score, **page)
