"""Per-channel consent, derived from the append-only ``ConsentEvent`` log.

No event on a channel means the patient may be contacted there (the clinic
collected consent at intake); the newest event decides otherwise.
"""

from __future__ import annotations

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
