"""Twilio webhooks: inbound SMS (``/webhooks/twilio/inbound``) and status callbacks (``/webhooks/twilio/status``).

Both verify ``X-Twilio-Signature`` with Twilio's own ``RequestValidator`` against
``ENGAGE_PUBLIC_URL`` + path (+ query) and the form fields: 403 when it is missing or
wrong, or when no auth token is configured (an unverifiable webhook is never trusted).

Inbound: handed to :func:`engage.conversation.inbound.receive_sms`, which stores it once per
``MessageSid``, acts on it and picks the answer (TwiML with one message, or none).

Status: the message is found by our id in the callback URL (``?m=``), else by Twilio's
sid; an unknown one is answered 200 and ignored, so Twilio stops retrying.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import PlainTextResponse, Response
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from engage.config import get_settings
from engage.conversation.consent import record_consent
from engage.conversation.inbound import InboundSms, receive_sms
from engage.db import session_scope
from engage.delivery.status import apply_status, twilio_status
from engage.records.models import (
    Channel,
    ConsentState,
    Message,
)
from engage.schedule.reconcile import reconcile_patient
from engage.web.nul import strip_nul

log = logging.getLogger(__name__)
router = APIRouter()

PROVIDER = "twilio"
_ID = re.compile(r"[0-9]{1,9}")  # ASCII digits only, and small enough for an INTEGER column
UNSUBSCRIBED_CODE = "21610"  # "Attempt to send to unsubscribed recipient": the carrier holds a STOP


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
    """An SMS a patient sent us. Replies with TwiML (one message or none)."""
    fields = await verified_fields(request)
    if fields is None:
        return _forbidden()
    reply = await run_in_threadpool(handle_inbound, fields)
    return _twiml(reply)


def handle_inbound(fields: Mapping[str, str]) -> str | None:
    """Store and act on one inbound SMS (Twilio's form fields); returns the reply text, or None for no reply."""
    sms = InboundSms(
        sid=(fields.get("MessageSid") or fields.get("SmsSid") or "").strip()[:64] or None,
        from_phone=(fields.get("From") or "").strip(),
        to_phone=(fields.get("To") or "").strip(),
        body=fields.get("Body") or "",
        messaging_service_sid=fields.get("MessagingServiceSid"),
    )
    with session_scope() as session:
        return receive_sms(session, sms, on_opt_in=reconcile_patient)


# --- status callbacks --------------------------------------------------------------------------


@router.post("/webhooks/twilio/status")
async def status(request: Request) -> Response:
    """A delivery status callback for an SMS we sent. 200 whenever the signature is good."""
    fields = await verified_fields(request)
    if fields is None:
        return _forbidden()
    await run_in_threadpool(handle_status, request.query_params.get("m"), fields)
    return Response(status_code=200)


def handle_status(message_ref: str | None, fields: Mapping[str, str]) -> None:
    """Apply one status callback (``message_ref`` is our id from ``?m=``). Unknown messages are ignored."""
    sid = (fields.get("MessageSid") or fields.get("SmsSid") or "").strip()
    word = (fields.get("MessageStatus") or fields.get("SmsStatus") or "").strip().lower()
    error_code = (fields.get("ErrorCode") or "").strip() or None
    with session_scope() as session:
        message = _find_message(session, message_ref, sid)
        if message is None:
            log.info("twilio status callback for an unknown message ignored")
            return
        new = apply_status(
            session,
            message,
            twilio_status(word),
            provider=PROVIDER,
            event_id=f"{sid or message.id}:{word}",
            payload=dict(fields),
            error_code=error_code,
            provider_message_id=sid or None,
            error=f"twilio error {error_code}" if error_code else None,
        )
        if new and error_code == UNSUBSCRIBED_CODE:
            record_consent(
                session,
                message.patient_id,
                Channel.SMS,
                ConsentState.OPTED_OUT,
                "twilio_21610",
                f"message {message.id}",
            )


def _find_message(session: Session, message_ref: str | None, sid: str) -> Message | None:
    if message_ref and _ID.fullmatch(message_ref):
        message = session.get(Message, int(message_ref))
        if message is not None and message.channel is Channel.SMS:
            return message
        return None
    if sid:
        return session.scalars(
            select(Message).where(Message.provider_message_id == sid, Message.channel == Channel.SMS).limit(1)
        ).first()
    return None
