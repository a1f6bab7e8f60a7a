"""Pages patients open from their messages: unsubscribe (``/u/{token}``) and the reassessment answer (``/r/{token}``).

Every page speaks the patient's language (``templates/web/<page>.es.html`` for Spanish,
``lang`` set, dates and numbers formatted by Babel) and shows the clinic's phone as a
``tel:`` link. Tokens are signed (``engage.content.links``); a forged, altered or
wrong-purpose token gets the same 404 page as a token for a record that no longer
exists, and that page says nothing about any patient, address or number.

Unsubscribe follows RFC 8058: ``GET`` shows a confirmation page with one button (mail
scanners follow GET links, so GET never unsubscribes); ``POST`` (the button, or a mail
client's one-click ``List-Unsubscribe=One-Click``) unsubscribes at once, no login and no
further step. Unsubscribing again changes nothing. The unsubscribed page says how to opt back in.

Reassessment: a GET never records (a mail scanner opens all eleven score links of an
email). ``GET /r/{token}`` shows 0-10 as large buttons (two rows on a 360 px screen);
``GET ?score=N`` (the email's one-click links) and ``POST score=N`` show a confirm step;
``POST score=N&confirm=yes`` records N, if the prompt was sent and is within its answer
window (see ``engage.conversation.outcomes``; a closed prompt gets a page saying so, 410),
and thanks the patient, with the safety line when the score is high. A later answer
becomes the outcome, so a mis-click can be corrected.

Pages are rendered in the same sandbox as messages (``engage.content.pages``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from babel.dates import format_date
from babel.numbers import format_decimal
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session
from starlette.responses import HTMLResponse

from engage.content.links import InvalidToken, read_reassessment_token, read_unsubscribe_token
from engage.content.pages import page_names, render_page
from engage.content.rendering import TemplateError, babel_locale
from engage.conversation.consent import current_consent, record_consent
from engage.conversation.outcomes import PromptClosed, answer_from_page, is_open, is_prompt
from engage.db import session_scope
from engage.records.models import Channel, ConsentState, Message, Patient

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
LANGUAGES = ("en", "es")
_DEFAULT_CLINIC = {"en": "Your clinic", "es": "Su clínica"}
_NOTE = {"en": "Please choose a whole number from 0 to 10.", "es": "Elija un número entero del 0 al 10."}


@dataclass(frozen=True)
class PageFacts:
    """What every page shows about who sent the message, in the patient's language."""

    lang: str = "en"
    clinic_name: str | None = None
    phone_tel: str | None = None  # E.164, for the tel: link
    phone_display: str | None = None  # as people dial it
    timezone: str = "UTC"

    def context(self) -> dict[str, Any]:
        return {
            "lang": self.lang,
            "clinic_name": self.clinic_name,
            "default_clinic": _DEFAULT_CLINIC[self.lang],
            "phone_tel": self.phone_tel,
            "phone_display": self.phone_display,
            "numbers": [format_decimal(n, locale=self.lang) for n in range(11)],
        }


def page_facts(session: Session, patient_id: int) -> PageFacts | None:
    """The page facts for ``patient_id``'s pages, or None when the patient no longer exists."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        return None
    clinic = patient.clinic
    return PageFacts(
        lang=page_language(patient.locale),
        clinic_name=clinic.name,
        phone_tel=clinic.phone,
        phone_display=dialled(clinic.phone),
        timezone=patient.effective_timezone,
    )


def page_language(locale: str | None) -> str:
    """The language the pages speak for ``locale``: one we have pages in, else English."""
    language = babel_locale(locale).language
    return language if language in LANGUAGES else "en"


def dialled(phone: str | None) -> str | None:
    """``+14155550199`` as people dial it in its own country: ``(415) 555-0199``."""
    if not phone:
        return None
    try:
        return phonenumbers.format_number(phonenumbers.parse(phone), phonenumbers.PhoneNumberFormat.NATIONAL)
    except phonenumbers.NumberParseException:
        return phone


_BROKEN_PAGE = '<!DOCTYPE html><html lang="en"><title>Error</title><p>Something went wrong. Please try again later.'


def render(page: str, facts: PageFacts, status_code: int = 200, **context: Any) -> HTMLResponse:
    """``templates/web/<page>[.<lang>].html`` (sandboxed, autoescaped) with the privacy headers.

    A broken template gives a plain 500 page; the log names the file and line, never patient data.
    """
    name = f"{page}.{facts.lang}.html"
    if facts.lang == "en" or name not in page_names():
        name = f"{page}.html"
    try:
        html = render_page(name, {**facts.context(), **context})
    except TemplateError as exc:
        log.error("patient page template failed: %s", exc)
        return HTMLResponse(_BROKEN_PAGE, status_code=500, headers=_HEADERS)
    return HTMLResponse(html, status_code=status_code, headers=_HEADERS)


def _invalid() -> HTMLResponse:
    return render("invalid", PageFacts(), status_code=404)


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
            facts = page_facts(session, target[0]) or PageFacts()
        return render("unsubscribe", facts, channel=target[1].value)

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
            facts = page_facts(session, patient_id)
            # A deleted patient gets the same answer: the page reveals nothing either way.
            if facts is not None and current_consent(session, patient_id, channel) is not ConsentState.OPTED_OUT:
                record_consent(session, patient_id, channel, ConsentState.OPTED_OUT, "unsubscribe_link")
                log.info("patient %s unsubscribed from %s by link", patient_id, channel.value)
        return render("unsubscribed", facts or PageFacts(), channel=channel.value)

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
    """The 0-10 choice; with ``?score=N`` the confirm step. Never records."""
    return await run_in_threadpool(_answer, token, request.query_params.get("score"), False)


@router.post("/r/{token}")
async def reassessment_post(token: str, request: Request) -> HTMLResponse:
    """``score`` alone: the confirm step; ``score`` with ``confirm=yes``: record it and thank."""
    form = await request.form()
    raw = form.get("score") if "score" in form else request.query_params.get("score")
    return await run_in_threadpool(_answer, token, raw, form.get("confirm") == "yes")


def _answer(token: str, raw: Any, confirmed: bool) -> HTMLResponse:
    try:
        message_id = read_reassessment_token(token)
    except InvalidToken:
        return _invalid()
    with session_scope() as session:
        prompt = session.get(Message, message_id)
        if prompt is None or not is_prompt(prompt):
            return _invalid()
        facts = page_facts(session, prompt.patient_id) or PageFacts()
        if not is_open(prompt):
            return render("closed", facts, status_code=410)
        score = _score(raw)
        if score is None:
            note = _NOTE[facts.lang] if raw not in (None, "") else None
            return render("reassessment", facts, status_code=400 if note else 200, note=note)
        if not confirmed:
            return render("confirm", facts, score=score)
        try:
            outcome, high = answer_from_page(session, prompt, score)
        except PromptClosed:  # the window closed between the check and now
            return render("closed", facts, status_code=410)
        log.info("reassessment answer recorded for message %s", prompt.id, extra={"message_id": prompt.id})
        recorded_on = format_date(
            outcome.recorded_at.astimezone(ZoneInfo(facts.timezone)), format="long", locale=facts.lang
        )
    return render("thanks", facts, score=score, high=high, recorded_on=recorded_on)
