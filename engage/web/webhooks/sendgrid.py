"""SendGrid's signed event webhook (``/webhooks/sendgrid/events``).

Verify, then parse, then apply (anymail's order):

1. ECDSA signature over ``timestamp + raw body`` with ``SENDGRID_WEBHOOK_PUBLIC_KEY``
   (the SDK's ``EventWebhook``); the timestamp must lie within
   ``webhook_replay_seconds`` of now, so a captured request cannot be replayed later.
   Anything else: 403. No key configured: 403 (never trust an unsigned batch).
2. The body is a JSON array of events. Each finds its message by our
   ``engage_message_id`` custom arg (SendGrid flattens custom args into the event),
   else by the ``sg_message_id`` prefix, which is the ``X-Message-Id`` we stored.
   Events for messages we do not know are ignored.
3. Each event is recorded once per ``sg_event_id``; a repeated batch changes nothing.
   ``delivered``/``bounce``/``dropped``/``deferred`` move the message (forwards only);
   a hard bounce, a drop for an invalid or suppressed address, a spam report and an
   unsubscribe opt the patient out of email only.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import logging
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import PlainTextResponse, Response

from engage.clock import utcnow
from engage.config import get_settings
from engage.conversation.consent import current_consent, record_consent
from engage.db import session_scope
from engage.delivery.providers.base import redact
from engage.delivery.status import Report, apply_reports, sendgrid_status
from engage.records.models import Channel, ConsentState, Message
from engage.web.nul import strip_nul

log = logging.getLogger(__name__)
router = APIRouter()

PROVIDER = "sendgrid"
CUSTOM_ARG = "engage_message_id"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

_ID = re.compile(r"[0-9]{1,9}")  # ASCII digits only, and small enough for an INTEGER column

#: ``dropped`` reasons that say the address itself must not be mailed (not our payload's fault).
SUPPRESSING_DROP_REASONS = frozenset(
    {"invalid", "invalid email", "invalid address", "bounced address", "unsubscribed address", "spam reporting address"}
)


def signature_problem(body: bytes, signature: str | None, timestamp: str | None) -> str | None:
    """Why a batch is refused; None when ``signature`` is SendGrid's ECDSA signature of a fresh timestamp + body."""
    settings = get_settings()
    if not settings.sendgrid_webhook_public_key:
        return "SENDGRID_WEBHOOK_PUBLIC_KEY is not set, so signatures cannot be checked"
    if not signature or not timestamp:
        return "no signature or timestamp headers"
    try:
        sent_at = int(timestamp)
        payload = body.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return "the timestamp is not a number or the body is not UTF-8"
    if abs(utcnow().timestamp() - sent_at) > settings.webhook_replay_seconds:
        return f"the timestamp is more than {settings.webhook_replay_seconds} s from now"
    verifier = EventWebhook()
    try:
        key = verifier.convert_public_key_to_ecdsa(settings.sendgrid_webhook_public_key)
    except ValueError:
        return "SENDGRID_WEBHOOK_PUBLIC_KEY is not a valid public key"
    try:
        if verifier.verify_signature(payload, signature, timestamp, key):
            return None
    except (binascii.Error, ValueError):
        pass  # not base64, or not a DER signature at all
    return "the signature does not verify with SENDGRID_WEBHOOK_PUBLIC_KEY"


@router.post("/webhooks/sendgrid/events")
async def events(request: Request) -> Response:
    """A batch of SendGrid events. 403 on a bad signature, 400 on a body that is not a JSON array, else 200."""
    body = await request.body()
    problem = signature_problem(body, request.headers.get(SIGNATURE_HEADER), request.headers.get(TIMESTAMP_HEADER))
    if problem:
        # One line a refusal. The signature covers timestamp + body only, not the URL.
        log.warning(
            "sendgrid webhook refused at %s: %s", get_settings().public_url.rstrip("/") + request.url.path, problem
        )
        return PlainTextResponse("forbidden", status_code=403)
    try:
        batch = strip_nul(json.loads(body))  # after the signature check, which covers the raw body
    except ValueError:
        return PlainTextResponse("body is not JSON", status_code=400)
    if not isinstance(batch, list):
        return PlainTextResponse("body is not a JSON array of events", status_code=400)
    applied = await run_in_threadpool(handle_events, [e for e in batch if isinstance(e, dict)])
    return PlainTextResponse(f"ok {applied}")


def handle_events(batch: list[dict[str, Any]]) -> int:
    """Apply a verified batch in one transaction; returns how many events were new.

    Set-based whatever the batch size (SendGrid posts up to thousands of events at a
    time): two queries find the messages, :func:`apply_reports` records and applies the
    events with the messages locked in id order, then the new suppressing events opt
    their patients out of email.
    """
    with session_scope() as session:
        found = find_messages(session, batch)
        reports: list[Report] = []
        patients: dict[int, int] = {}  # message id -> patient id
        for event in batch:
            message = found.get(id(event))
            if message is None:
                continue
            message_id, patients[message_id] = message
            name = str(event.get("event") or "").lower()
            reason = str(event.get("reason") or event.get("response") or "")
            reports.append(
                Report(
                    message_id,
                    sendgrid_status(name),
                    event_id(event),
                    event,
                    error_code=str(event.get("status") or "") or None,
                    provider_message_id=_x_message_id(event),
                    # SMTP replies quote the recipient's address: redact before it becomes last_error.
                    error=f"sendgrid {name}: {redact(reason, 400)}" if reason else None,
                )
            )
        if len(reports) < len(batch):
            log.info("sendgrid: %d events for unknown messages ignored", len(batch) - len(reports))
        new = apply_reports(session, PROVIDER, reports)
        opt_outs: dict[int, tuple[str, int]] = {}  # patient id -> (source, message id), first event wins
        for report in new:
            source = suppression_source(report.payload)
            if source:
                opt_outs.setdefault(patients[report.message_id], (source, report.message_id))
        for patient_id, (source, message_id) in sorted(opt_outs.items()):
            if current_consent(session, patient_id, Channel.EMAIL) is not ConsentState.OPTED_OUT:
                record_consent(
                    session, patient_id, Channel.EMAIL, ConsentState.OPTED_OUT, source, f"message {message_id}"
                )
    return len(new)


def suppression_source(event: dict[str, Any]) -> str | None:
    """The consent source when this event means "never email this address again", else None.

    A ``blocked`` bounce (the receiving server refused this sender or content) is not the
    address's fault and SendGrid does not suppress it either, so neither do we.
    """
    name = str(event.get("event") or "").lower()
    if name == "bounce":
        return None if str(event.get("type") or "bounce").lower() == "blocked" else "bounce"
    if name == "dropped":
        reason = str(event.get("reason") or "").strip().lower()
        return "sendgrid_dropped" if reason in SUPPRESSING_DROP_REASONS else None
    if name in ("spamreport", "unsubscribe", "group_unsubscribe"):
        return name
    return None


def event_id(event: dict[str, Any]) -> str:
    """``sg_event_id``, or (older accounts send none) a digest of the event itself."""
    sg_event_id = event.get("sg_event_id")
    if sg_event_id:
        return str(sg_event_id)[:200]
    return "sha256:" + hashlib.sha256(json.dumps(event, sort_keys=True, default=str).encode()).hexdigest()


def find_messages(session: Session, batch: list[dict[str, Any]]) -> dict[int, tuple[int, int]]:
    """``id(event)`` -> (message id, patient id) of our email message for each event in ``batch`` we know.

    By the ``engage_message_id`` custom arg, else by SendGrid's message id; two queries for the whole batch.
    """
    ours: dict[int, int] = {}
    by_x_message_id: dict[int, str] = {}
    for event in batch:
        legacy = event.get("unique_args")  # very old accounts nest custom args
        arg = str(event.get(CUSTOM_ARG) or (legacy.get(CUSTOM_ARG) if isinstance(legacy, dict) else "") or "").strip()
        if _ID.fullmatch(arg):
            ours[id(event)] = int(arg)
        elif x_message_id := _x_message_id(event):
            by_x_message_id[id(event)] = x_message_id
    email = Message.channel == Channel.EMAIL
    known: dict[int, int] = {}
    wanted = sorted(set(ours.values()))
    for start in range(0, len(wanted), 1000):
        query = select(Message.id, Message.patient_id).where(Message.id.in_(wanted[start : start + 1000]), email)
        known.update((m, p) for m, p in session.execute(query))
    by_provider_id: dict[str, tuple[int, int]] = {}
    wanted_x = sorted(set(by_x_message_id.values()))
    for start in range(0, len(wanted_x), 1000):
        by_x = (
            select(Message.provider_message_id, Message.id, Message.patient_id)
            .where(Message.provider_message_id.in_(wanted_x[start : start + 1000]), email)
            .order_by(Message.id.desc())
        )  # the lowest id wins a (never expected) tie
        by_provider_id.update({x: (m, p) for x, m, p in session.execute(by_x) if x})
    found = {key: (m, known[m]) for key, m in ours.items() if m in known}
    found.update({key: by_provider_id[x] for key, x in by_x_message_id.items() if x in by_provider_id})
    return found


def _x_message_id(event: dict[str, Any]) -> str | None:
    # sg_message_id is "<X-Message-Id>.filter…"; the part before the first dot is what the send API returned.
    sg_message_id = str(event.get("sg_message_id") or "").strip()
    return sg_message_id.split(".", 1)[0] or None
