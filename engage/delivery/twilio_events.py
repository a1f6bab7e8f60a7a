"""What a Twilio webhook means, applied to the database: an inbound SMS, a status callback.

The web routes (``engage.web.webhooks.twilio``) check the signature and call these; when the
database cannot take them, the route holds the fields in :mod:`engage.delivery.spool` and a
worker calls the same functions once the database is back. Logs carry ids only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.conversation.consent import record_consent
from engage.conversation.inbound import InboundSms, receive_sms
from engage.conversation.replies import Kind, parse_reply
from engage.delivery.status import apply_status, twilio_status
from engage.records.models import Channel, ConsentState, Message
from engage.schedule.reconcile import reconcile_patient

log = logging.getLogger(__name__)

PROVIDER = "twilio"
_ID = re.compile(r"[0-9]{1,9}")  # ASCII digits only, and small enough for an INTEGER column
UNSUBSCRIBED_CODE = "21610"  # "Attempt to send to unsubscribed recipient": the carrier holds a STOP


def inbound_sms(session: Session, fields: Mapping[str, str]) -> str | None:
    """Store and act on one inbound SMS (Twilio's form fields); returns the reply text, or None for no reply."""
    sms = InboundSms(
        sid=(fields.get("MessageSid") or fields.get("SmsSid") or "").strip()[:64] or None,
        from_phone=(fields.get("From") or "").strip(),
        to_phone=(fields.get("To") or "").strip(),
        body=fields.get("Body") or "",
        messaging_service_sid=fields.get("MessagingServiceSid"),
    )
    return receive_sms(session, sms, replan=reconcile_patient)


def is_opt_out(fields: Mapping[str, str]) -> bool:
    """Whether this inbound SMS reads as an opt-out (held ones are applied opt-outs first)."""
    return parse_reply(fields.get("Body") or "").kind is Kind.OPT_OUT


def status_callback(session: Session, message_ref: str | None, fields: Mapping[str, str]) -> None:
    """Apply one status callback (``message_ref`` is our id from ``?m=``). Unknown messages are ignored."""
    sid = (fields.get("MessageSid") or fields.get("SmsSid") or "").strip()
    word = (fields.get("MessageStatus") or fields.get("SmsStatus") or "").strip().lower()
    error_code = (fields.get("ErrorCode") or "").strip() or None
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
            session, message.patient_id, Channel.SMS, ConsentState.OPTED_OUT, "twilio_21610", f"message {message.id}"
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
