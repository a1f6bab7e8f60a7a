"""A staff member's SMS reply in a patient's conversation, sent through the outbox like every message.

:func:`reply_to_patient` writes one ``scheduled`` outbox row (step ``staff-reply``, no enrollment: no
sequence plans it), due now, and audits it with the staff member; the dispatcher claims it and the
same send path delivers it exactly once, and its delivery status comes back by the provider's webhook.

Rules (checked before anything is written, and again at send time):

- a patient who opted out of SMS, has no phone or a phone the provider marked invalid is refused, with
  the reason in words (a reply would not reach them, or would break their STOP);
- a reply within :data:`CONVERSATION_WINDOW` of the patient's own latest text is conversational: it is
  not held by quiet hours, and no sequence's frequency caps count it or hold it; a later one waits out
  the clinic's quiet hours like any message;
- the same text to the same patient by the same staff member within :data:`DOUBLE_SUBMIT` is one reply
  (a double click or a re-sent form), not two.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.conversation.consent import reachability
from engage.errors import InvalidInput
from engage.records.audit import AuditAction, audit
from engage.records.models import (
    Channel,
    ConsentState,
    InboundMessage,
    Message,
    MessageStatus,
    Patient,
)
from engage.records.quiet_hours import quiet_hours_for
from engage.schedule.windows import is_quiet, shift_forward

STEP = "staff-reply"
TEMPLATE = "staff-reply"
CONVERSATION_WINDOW = timedelta(hours=24)
DOUBLE_SUBMIT = timedelta(minutes=2)
MAX_LENGTH = 480  # three SMS segments


def last_text_at(session: Session, patient_id: int) -> datetime | None:
    """When the patient last texted the clinic."""
    return session.scalar(select(func.max(InboundMessage.received_at)).where(InboundMessage.patient_id == patient_id))


def is_conversational(session: Session, patient_id: int, now: datetime) -> bool:
    """Whether a reply sent ``now`` answers the patient's own text of the last 24 hours."""
    last = last_text_at(session, patient_id)
    return last is not None and now - last <= CONVERSATION_WINDOW


def reply_to_patient(session: Session, patient: Patient, body: str, *, actor: str) -> Message:
    """Queue ``body`` as an SMS to ``patient`` from ``actor`` (see the module docstring); returns the outbox row.

    Raises ``InvalidInput`` (an empty or too long text, a patient the SMS cannot or may not reach)."""
    text = " ".join(body.split())
    if not text:
        raise InvalidInput("write the reply first")
    if len(text) > MAX_LENGTH:
        raise InvalidInput(f"a reply is at most {MAX_LENGTH} characters (this one has {len(text)})")
    unreachable = reachability(session, patient, Channel.SMS)
    if unreachable:
        raise InvalidInput(f"{patient.first_name} {patient.last_name} cannot get an SMS: {_in_words(unreachable)}")
    now = utcnow()
    earlier = session.scalars(
        select(Message).where(
            Message.patient_id == patient.id,
            Message.step_key == STEP,
            Message.created_at >= now - DOUBLE_SUBMIT,
        )
    ).all()
    for message in earlier:
        if message.context.get("body") == text and message.context.get("by") == actor:
            return message
    message = Message(
        enrollment_id=None,
        patient_id=patient.id,
        clinic_id=patient.clinic_id,
        appointment_id=None,
        step_key=STEP,
        occurrence=f"staff:{uuid.uuid4().hex}",
        channel=Channel.SMS,
        template=TEMPLATE,
        due_at=now,
        status=MessageStatus.SCHEDULED,
        context={"body": text, "by": actor, "conversational": is_conversational(session, patient.id, now)},
    )
    session.add(message)
    session.flush()
    audit(
        session,
        clinic_id=patient.clinic_id,
        actor=actor,
        action=AuditAction.MESSAGE_STAFF_REPLY,
        subject_type="message",
        subject_id=message.id,
        patient_id=patient.id,
    )
    return message


def _in_words(reason: str) -> str:
    return {
        "opted out of sms": "they opted out of SMS (replied STOP or asked staff); call them instead",
        "no phone number": "there is no mobile number on file",
    }.get(reason, reason)


def send_time_check(
    session: Session, message: Message, now: datetime, *, consent: ConsentState | None = None
) -> tuple[MessageStatus, str, datetime | None] | None:
    """Why a staff reply must not go out now: ``(status, reason, retry at)``, or None when it may.

    Consent and the phone are read as they are now; quiet hours hold a reply that is not conversational."""
    patient = message.patient
    unreachable = reachability(session, patient, Channel.SMS, consent=consent)
    if unreachable:
        return MessageStatus.SKIPPED, unreachable, None
    if is_conversational(session, patient.id, now):
        return None
    tz = ZoneInfo(patient.effective_timezone)
    quiet = quiet_hours_for(patient.clinic.quiet_hours, Channel.SMS.value)
    if is_quiet(now, tz, quiet):
        return MessageStatus.SCHEDULED, "quiet hours", shift_forward(now, tz, quiet)
    return None
