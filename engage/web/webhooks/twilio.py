"""Twilio webhooks: inbound SMS (``/webhooks/twilio/inbound``) and status callbacks (``/webhooks/twilio/status``).

Both verify ``X-Twilio-Signature`` with Twilio's own ``RequestValidator`` against
``ENGAGE_PUBLIC_URL`` + path (+ query) and the form fields: 403 when it is missing or
wrong, or when no auth token is configured (an unverifiable webhook is never trusted).

Inbound: handed to :func:`engage.conversation.inbound.receive_sms` (through
:mod:`engage.delivery.twilio_events`), which stores it once per ``MessageSid``, acts on it and
picks the answer (TwiML with one message, or none). While the database is down the message is
held in Redis (:mod:`engage.delivery.spool`) and answered 200: Twilio never retries an inbound
message, and a lost STOP would let us text a patient who said stop.

Status: the message is found by our id in the callback URL (``?m=``), else by Twilio's
sid; an unknown one is answered 200 and ignored, so Twilio stops retrying. Held like an
inbound message while the database is down.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, Response
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from engage.config import get_settings
from engage.db import session_scope
from engage.delivery import spool, twilio_events
from engage.web.nul import strip_nul

log = logging.getLogger(__name__)
router = APIRouter()


# --- signature ---------------------------------------------------------------------------------


def public_request_url(request: Request) -> str:
    """The URL Twilio signed: ``ENGAGE_PUBLIC_URL`` + path (+ query), not what a proxy handed us."""
    url = get_settings().public_url.rstrip("/") + request.url.path
    return f"{url}?{request.url.query}" if request.url.query else url


FORM = "application/x-www-form-urlencoded"


async def verified_fields(request: Request) -> dict[str, str] | None:
    """The request's form fields when ``X-Twilio-Signature`` is valid for them, else None.

    Twilio posts only ``application/x-www-form-urlencoded``; any other body (multipart with
    a file part, JSON) is a 400 before it is parsed. Each refusal logs one line naming the
    URL the signature was checked against, without its query (a wrong ``ENGAGE_PUBLIC_URL``
    refuses every webhook, and this line is how an operator sees it).
    """
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM:
        raise HTTPException(status_code=400, detail=f"Twilio webhooks are {FORM}")
    token = get_settings().twilio_auth_token
    signature = request.headers.get("X-Twilio-Signature")
    form = await request.form()
    if not token:
        log.warning("twilio webhook refused: TWILIO_AUTH_TOKEN is not set, so signatures cannot be checked")
        return None
    url = public_request_url(request)
    if not signature or not RequestValidator(token).validate(url, form, signature):
        log.warning(
            "twilio webhook refused: %s X-Twilio-Signature for %s",
            "invalid" if signature else "no",
            url.split("?", 1)[0],
        )
        return None
    # The signature covers the fields as sent; a NUL (which no database column takes) goes only after it is checked.
    return {strip_nul(key): strip_nul(value) for key, value in form.items() if isinstance(value, str)}


def _forbidden() -> Response:
    return PlainTextResponse("forbidden", status_code=403)


def _twiml(reply: str | None) -> Response:
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return Response(str(response), media_type="application/xml")


# --- inbound -----------------------------------------------------------------------------------


@router.post("/webhooks/twilio/inbound")
async def inbound(request: Request) -> Response:
    """An SMS a patient sent us. Replies with TwiML (one message or none); 503 only when it could not be kept."""
    fields = await verified_fields(request)
    if fields is None:
        return _forbidden()
    try:
        reply = await run_in_threadpool(handle_inbound, fields)
    except spool.SpoolUnavailable:
        return PlainTextResponse("unavailable", status_code=503)
    return _twiml(reply)


def handle_inbound(fields: Mapping[str, str]) -> str | None:
    """Store and act on one inbound SMS (Twilio's form fields); returns the reply text, or None for no reply.

    Twilio never retries an inbound message, so when the database cannot take it the fields are held
    (:mod:`engage.delivery.spool`) and applied, opt-outs first, before any send once it is back; the
    answer is then empty (a STOP is confirmed by Twilio itself). Raises ``SpoolUnavailable`` when even
    that fails.
    """
    try:
        with session_scope() as session:
            return twilio_events.inbound_sms(session, fields)
    except spool.DATABASE_DOWN as exc:
        log.error("twilio inbound: database unavailable (%s); holding the message", type(exc).__name__)
        spool.hold(spool.INBOUND, fields)
        return None


# --- status callbacks --------------------------------------------------------------------------


@router.post("/webhooks/twilio/status")
async def status(request: Request) -> Response:
    """A delivery status callback for an SMS we sent. 200 whenever the signature is good and it was kept."""
    fields = await verified_fields(request)
    if fields is None:
        return _forbidden()
    try:
        await run_in_threadpool(handle_status, request.query_params.get("m"), fields)
    except spool.SpoolUnavailable:
        return PlainTextResponse("unavailable", status_code=503)  # Twilio retries a callback that failed
    return Response(status_code=200)


def handle_status(message_ref: str | None, fields: Mapping[str, str]) -> None:
    """Apply one status callback (``message_ref`` is our id from ``?m=``); held while the database is down."""
    try:
        with session_scope() as session:
            twilio_events.status_callback(session, message_ref, fields)
    except spool.DATABASE_DOWN as exc:
        log.error("twilio status callback: database unavailable (%s); holding it", type(exc).__name__)
        spool.hold(spool.TWILIO_STATUS, {"ref": message_ref, "fields": dict(fields)})
