"""Twilio webhooks: inbound SMS (``/webhooks/twilio/inbound``) and status callbacks (``/webhooks/twilio/status``).

Both verify ``X-Twilio-Signature`` with Twilio's own ``RequestValidator`` against
``ENGAGE_PUBLIC_URL`` + path (+ query) and the form fields: 403 when it is missing or
wrong, or when no auth token is configured (an unverifiable webhook is never trusted).

Inbound: the sender is found by phone (E.164) among the patients of the clinic that
owns the ``To`` number (``Clinic.sms_from``, or the messaging service). Keywords apply
to every patient on that phone, because STOP must always work; a 0-10 score is matched
only when exactly one patient has the phone, to their latest open reassessment prompt;
otherwise it is stored and flagged for staff, never guessed. Every inbound message is
stored once per ``MessageSid``: a repeated delivery changes nothing and gets an empty reply.

Status: the message is found by our id in the callback URL (``?m=``), else by Twilio's
sid; an unknown one is answered 200 and ignored, so Twilio stops retrying.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

import phonenumbers
from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.responses import PlainTextResponse, Response
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from engage.config import get_settings
from engage.conversation.consent import record_consent
from engage.conversation.inbound import Classified, Kind, classify
from engage.conversation.outcomes import open_sms_prompt, record_outcome
from engage.db import session_scope
from engage.delivery.status import apply_status, twilio_status
from engage.records.audit import audit
from engage.records.models import (
    Channel,
    Clinic,
    ConsentState,
    InboundMessage,
    Message,
    Patient,
)
from engage.schedule.reconcile import reconcile_patient

log = logging.getLogger(__name__)
router = APIRouter()

PROVIDER = "twilio"
_ID = re.compile(r"[0-9]{1,9}")  # ASCII digits only, and small enough for an INTEGER column
UNSUBSCRIBED_CODE = "21610"  # "Attempt to send to unsubscribed recipient": the carrier holds a STOP


@dataclass(frozen=True)
class Sender:
    """Who an inbound SMS is from: the clinic it was sent to (if known) and the patients on that phone."""

    clinic: Clinic | None
    patients: list[Patient]


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
        log.warning("twilio webhook refused: %s X-Twilio-Signature for %s", "invalid" if signature else "no",
                    url.split("?", 1)[0])
        return None
    return {key: value for key, value in form.items() if isinstance(value, str)}


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
    sid = (fields.get("MessageSid") or fields.get("SmsSid") or "").strip()[:64] or None
    from_phone = (fields.get("From") or "").strip()
    to_phone = (fields.get("To") or "").strip()
    body = fields.get("Body") or ""
    meaning = classify(body)
    with session_scope() as session:
        if sid and session.scalar(select(InboundMessage.id).where(InboundMessage.provider_sid == sid)):
            return None  # a repeated delivery: already handled
        sender = find_sender(session, from_phone, to_phone, fields.get("MessagingServiceSid"), meaning.kind)
        single = sender.patients[0] if len(sender.patients) == 1 else None
        clinic = sender.clinic or (sender.patients[0].clinic if sender.patients else None)
        record = InboundMessage(
            provider_sid=sid, clinic_id=clinic.id if clinic else None, patient_id=single.id if single else None,
            from_phone=from_phone[:20], to_phone=to_phone[:20] or None, body=body, kind=meaning.kind.value,
        )
        try:
            with session.begin_nested():
                session.add(record)
        except IntegrityError:
            return None  # the same MessageSid arrived concurrently and the other request stored it
        reply = _act(session, meaning, sender, record, clinic)
        log.info("inbound sms %s: kind %s, %d patient(s), flagged %s",
                 record.id, meaning.kind.value, len(sender.patients), record.flagged)
        return reply


def find_sender(
    session: Session, from_phone: str, to_phone: str, messaging_service_sid: str | None, kind: Kind,
) -> Sender:
    """The clinic owning the ``To`` number (or messaging service) and its patients with phone ``from_phone``.

    Clinics without their own sender send from the account's default number, so when no
    clinic claims ``To`` they are the candidates. An opt-out that finds nobody there is
    applied to every patient with that phone: STOP must work even after a clinic changed numbers.
    """
    keys = [k for k in (to_phone, (messaging_service_sid or "").strip()) if k]
    clinics = list(session.scalars(select(Clinic).where(Clinic.sms_from.in_(keys)))) if keys else []
    if not clinics:
        clinics = list(session.scalars(select(Clinic).where(Clinic.sms_from.is_(None))))
    if not from_phone:
        return Sender(clinics[0] if len(clinics) == 1 else None, [])
    query = select(Patient).where(Patient.phone == from_phone).order_by(Patient.id)
    patients = list(session.scalars(query.where(Patient.clinic_id.in_([c.id for c in clinics])))) if clinics else []
    if not patients and kind is Kind.OPT_OUT:
        patients = list(session.scalars(query))
    return Sender(clinics[0] if len(clinics) == 1 else None, patients)


#: Keyword replies, by locale. Plain GSM-7 (no accents) so each stays one segment.
REPLIES = {
    "en": {
        "stop": "{name}: you are unsubscribed and will get no more text messages from us. Reply START to resubscribe.",
        "start": "{name}: you are subscribed to text messages again. Reply HELP for help, STOP to unsubscribe.",
        "help": "{name}: for help, {contact}. Reply STOP to unsubscribe.",
        "call": "call {phone}",
        "no_phone": "contact the clinic",
        "score": "{name}: thank you, we recorded your pain score of {score}/10.",
        "clinic": "Your clinic",
    },
    "es": {
        "stop": "{name}: se ha dado de baja y no recibira mas mensajes de texto. Responda START para volver.",
        "start": "{name}: volvera a recibir nuestros mensajes. Responda HELP para ayuda, STOP para darse de baja.",
        "help": "{name}: para ayuda, {contact}. Responda STOP para darse de baja.",
        "call": "llame al {phone}",
        "no_phone": "contacte con la clinica",
        "score": "{name}: gracias, hemos anotado su nivel de dolor de {score}/10.",
        "clinic": "Su clinica",
    },
}


def _words(sender: Sender) -> dict[str, str]:
    """Replies in the sender's language when exactly one patient has the phone, else English."""
    locale = sender.patients[0].locale if len(sender.patients) == 1 else "en"
    return REPLIES.get(locale, REPLIES["en"])


def _act(
    session: Session, meaning: Classified, sender: Sender, record: InboundMessage, clinic: Clinic | None,
) -> str | None:
    words = _words(sender)
    name = clinic.name if clinic else words["clinic"]
    if meaning.kind is Kind.OPT_OUT:
        for patient in sender.patients:
            record_consent(session, patient.id, Channel.SMS, ConsentState.OPTED_OUT, "sms_keyword", meaning.keyword)
            _audit(session, patient, "consent.sms_opt_out", record)
        # The same words whether or not we know the number: the reply reveals nothing.
        return words["stop"].format(name=name)
    if meaning.kind is Kind.OPT_IN:
        for patient in sender.patients:
            record_consent(session, patient.id, Channel.SMS, ConsentState.OPTED_IN, "sms_keyword", meaning.keyword)
            _audit(session, patient, "consent.sms_opt_in", record)
            reconcile_patient(session, patient.id)  # future SMS rows skipped for the opt-out come back
        return words["start"].format(name=name)
    if meaning.kind is Kind.HELP:
        phone = clinic.phone if clinic and clinic.phone else None
        contact = words["call"].format(phone=_national(phone)) if phone else words["no_phone"]
        return words["help"].format(name=name, contact=contact)
    if meaning.kind is Kind.SCORE and meaning.score is not None:
        if len(sender.patients) > 1:
            _flag(record, f"phone shared by {len(sender.patients)} patients: score not matched to a prompt")
            return None
        if not sender.patients:
            _flag(record, "sender not recognised")
            return None
        prompt = open_sms_prompt(session, sender.patients[0].id)
        if prompt is None:
            _flag(record, "score with no open reassessment prompt")
            return None
        record_outcome(session, prompt, meaning.score, source="sms", inbound_message_id=record.id)
        return words["score"].format(name=name, score=meaning.score)
    _flag(record, "message for staff" if sender.patients else "message for staff; sender not recognised")
    return None


def _national(phone: str) -> str:
    """``+14155550100`` as people dial it from the same country: ``(415) 555-0100``."""
    try:
        number = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return phone
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def _flag(record: InboundMessage, reason: str) -> None:
    record.flagged = True
    record.flag_reason = reason[:200]


def _audit(session: Session, patient: Patient, action: str, record: InboundMessage) -> None:
    audit(session, clinic_id=patient.clinic_id, actor="webhook:twilio", action=action, subject_type="patient",
          subject_id=patient.id, inbound_message_id=record.id)


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
            session, message, twilio_status(word), provider=PROVIDER, event_id=f"{sid or message.id}:{word}",
            payload=dict(fields), error_code=error_code, provider_message_id=sid or None,
            error=f"twilio error {error_code}" if error_code else None,
        )
        if new and error_code == UNSUBSCRIBED_CODE:
            record_consent(session, message.patient_id, Channel.SMS, ConsentState.OPTED_OUT, "twilio_21610",
                           f"message {message.id}")


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
