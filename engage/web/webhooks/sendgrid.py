"""SendGrid's signed event webhook (``/webhooks/sendgrid/events``): verify and parse here, then hand over.

Verify, parse, normalize, apply (anymail's order); the last two live in the library
(``engage.delivery.providers.sendgrid.normalize_events``, ``engage.delivery.email_events``):

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
import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from sendgrid.helpers.eventwebhook import EventWebhook
from starlette.responses import PlainTextResponse, Response

from engage.clock import utcnow
from engage.config import get_settings
from engage.db import session_scope
from engage.delivery.email_events import apply_email_events
from engage.delivery.providers.sendgrid import normalize_events
from engage.web.nul import strip_nul

log = logging.getLogger(__name__)
router = APIRouter()

PROVIDER = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


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
    applied = await run_in_threadpool(handle_events, batch)
    return PlainTextResponse(f"ok {applied}")


def handle_events(batch: list[Any]) -> int:
    """Apply a verified, parsed batch in one transaction; returns how many events were new."""
    with session_scope() as session:
        return apply_email_events(session, PROVIDER, normalize_events(batch))
