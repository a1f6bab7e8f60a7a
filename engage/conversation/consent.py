"""Per-channel consent, derived from the append-only ``ConsentEvent`` log.

No event on a channel means the patient may be contacted there (the clinic
collected consent at intake); the newest event decides otherwise.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import ScalarSelect, select, update
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.records.models import Channel, ConsentEvent, ConsentState, Message, MessageStatus, Patient
from engage.records.outgoing_webhooks import EventType, emit


def newest_consent(patient_id: Any, channel: Any) -> ScalarSelect[ConsentState]:
    """The newest event's state as a scalar subquery (NULL without events); the arguments may be columns."""
    return (
        select(ConsentEvent.state)
        .where(ConsentEvent.patient_id == patient_id, ConsentEvent.channel == channel)
        .order_by(ConsentEvent.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def current_consent(session: Session, patient_id: int, channel: Channel) -> ConsentState:
    """The patient's consent on ``channel`` now: the newest event's state, or opted in when there is none."""
    state = session.scalar(select(newest_consent(patient_id, channel)))
    return state or ConsentState.OPTED_IN


def reachability(
    session: Session, patient: Patient, channel: Channel, *, consent: ConsentState | None = None
) -> str | None:
    """Why ``patient`` cannot receive on ``channel`` now, or None when they can.

    ``consent``: the current consent when the caller read it already (:func:`newest_consent` in its own query).
    """
    if channel is Channel.SMS:
        if not patient.phone:
            return "no phone number"
        if patient.phone_invalid:
            return "phone number marked invalid by the provider"
    elif not patient.email:
        return "no email address"
    if (consent or current_consent(session, patient.id, channel)) is ConsentState.OPTED_OUT:
        return f"opted out of {channel.value}"
    return None


#: Sources of an SMS opt-out that only the patient can undo: a STOP keyword to us, or to Twilio (error 21610).
PATIENT_KEYWORD_SOURCES = ("sms_keyword", "twilio_21610")
#: Why staff cannot opt a patient back in to SMS after a keyword opt-out (the staff page, the API's 409, the CLI).
ONLY_THE_PATIENT_CAN_OPT_IN = (
    "this patient opted out of SMS by texting STOP; only the patient can opt back in, by texting START "
    "(or ALTA) to the clinic's number"
)


def opted_out_by_keyword(session: Session, patient_id: int) -> bool:
    """True when the patient's newest SMS consent event is an opt-out they sent by keyword (STOP and the like).

    Carriers and Twilio block texts after STOP until the patient sends START, and the TCPA puts
    the choice with the patient: staff record a verbal opt-out, never an opt-in over a STOP.
    """
    newest = session.execute(
        select(ConsentEvent.state, ConsentEvent.source)
        .where(ConsentEvent.patient_id == patient_id, ConsentEvent.channel == Channel.SMS)
        .order_by(ConsentEvent.id.desc())
        .limit(1)
    ).first()
    return newest is not None and newest.state is ConsentState.OPTED_OUT and newest.source in PATIENT_KEYWORD_SOURCES


def record_consent(
    session: Session,
    patient_id: int,
    channel: Channel,
    state: ConsentState,
    source: str,
    detail: str | None = None,
) -> ConsentEvent:
    """Append a consent event. Opting out cancels the channel's messages not yet handed to a worker.

    Returns the event. Rows already ``queued`` are stopped at send time by the send-time check.
    """
    event = ConsentEvent(patient_id=patient_id, channel=channel, state=state, source=source, detail=detail, at=utcnow())
    session.add(event)
    if state is ConsentState.OPTED_OUT:
        session.execute(
            update(Message)
            .where(
                Message.patient_id == patient_id,
                Message.channel == channel,
                Message.status == MessageStatus.SCHEDULED,
            )
            .values(status=MessageStatus.CANCELLED, status_reason=f"opted out ({source})", updated_at=utcnow())
        )
    session.flush()
    emit(session, EventType.CONSENT_CHANGED, [event.id])
    return event


class RejectReason(enum.StrEnum):
    """Why an email provider says an address refused (or will not be sent) mail, in words of our own
    (django-anymail's ``reject_reason``); each provider module maps its vendor's words to these."""

    INVALID = "invalid"  # no such address, or malformed
    BOUNCED = "bounced"  # a hard bounce, now or before (the provider suppresses the address)
    BLOCKED = "blocked"  # the receiving server refused this sender or content: not the address's fault
    SPAM = "spam"  # the recipient reported our mail as spam
    UNSUBSCRIBED = "unsubscribed"  # the recipient unsubscribed at the provider
    OTHER = "other"


#: Drop reasons that are about the address itself, so it must not be mailed again.
_ADDRESS_REASONS = frozenset({RejectReason.INVALID, RejectReason.BOUNCED, RejectReason.SPAM, RejectReason.UNSUBSCRIBED})
#: Events that are the recipient's own "no more email", recorded under their own name as the source.
_RECIPIENT_OPT_OUTS = frozenset({"spamreport", "unsubscribe", "group_unsubscribe"})


def email_opt_out_source(event: str, reject_reason: RejectReason | None) -> str | None:
    """The consent source when an email event means "never email this address again", else None.

    ``event`` is the provider's event word, lower case (``bounce``, ``dropped``, ``spamreport``,
    ``unsubscribe``, ``group_unsubscribe``, ...). A hard bounce opts out (source ``bounce``), a
    ``blocked`` one does not (providers do not suppress it either); a drop opts out only when the
    address itself is at fault (``sendgrid_dropped``); a spam report or unsubscribe always does.
    """
    if event == "bounce":
        return None if reject_reason is RejectReason.BLOCKED else "bounce"
    if event == "dropped":
        return "sendgrid_dropped" if reject_reason in _ADDRESS_REASONS else None
    return event if event in _RECIPIENT_OPT_OUTS else None


def opt_out_of_email(session: Session, patient_id: int, source: str, detail: str | None = None) -> bool:
    """Record that the patient may not be emailed (a provider's suppression), unless they are opted out already.

    Returns whether an event was written; email still pending for them is cancelled (:func:`record_consent`)."""
    if current_consent(session, patient_id, Channel.EMAIL) is ConsentState.OPTED_OUT:
        return False
    record_consent(session, patient_id, Channel.EMAIL, ConsentState.OPTED_OUT, source, detail)
    return True


def consent_in_force(session: Session, patient_id: int) -> dict[str, dict[str, Any]]:
    """Per channel, the consent in force with its source and time (``source`` ``"default"`` and ``at`` None:
    no change recorded, so the patient may be contacted on every channel they gave)."""
    newest: dict[Channel, ConsentEvent] = {}
    for event in session.scalars(
        select(ConsentEvent).where(ConsentEvent.patient_id == patient_id).order_by(ConsentEvent.id)
    ):
        newest[event.channel] = event
    answer: dict[str, dict[str, Any]] = {}
    for channel in Channel:
        last = newest.get(channel)
        answer[channel.value] = {
            "state": last.state.value if last else ConsentState.OPTED_IN.value,
            "source": last.source if last else "default",
            "at": last.at.isoformat() if last else None,
        }
    return answer
