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
