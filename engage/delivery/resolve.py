"""Staff decide the fate of a message engage could not settle: ``unknown`` (maybe sent) or ``failed``.

- ``mark_sent``: the patient got it (they said so, or the provider's console shows it);
- ``send_again``: put it back on the schedule now; every send-time check applies again
  (consent, quiet hours, a visit that began meanwhile), so it may still be skipped;
- ``drop``: give up on it (``cancelled``).

Each needs a reason, kept on the row (``status_reason``) and in the audit.
"""

from __future__ import annotations

import enum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.errors import InvalidInput, NotFound
from engage.records.audit import AuditAction, audit
from engage.records.models import Message, MessageStatus, Patient
from engage.records.outgoing_webhooks import EventType, emit

RESOLVABLE = (MessageStatus.UNKNOWN, MessageStatus.FAILED)


class Resolution(enum.StrEnum):
    MARK_SENT = "mark_sent"
    SEND_AGAIN = "send_again"
    DROP = "drop"


_ACTION = {
    Resolution.MARK_SENT: AuditAction.MESSAGE_MARK_SENT,
    Resolution.SEND_AGAIN: AuditAction.MESSAGE_SEND_AGAIN,
    Resolution.DROP: AuditAction.MESSAGE_DROP,
}


def get_message_in_clinic(session: Session, clinic_id: int | None, message_id: int) -> Message:
    """The message, or ``NotFound`` when it does not exist or (``clinic_id`` given) is another clinic's."""
    query = select(Message).where(Message.id == message_id)
    if clinic_id is not None:
        query = query.join(Patient, Patient.id == Message.patient_id).where(Patient.clinic_id == clinic_id)
    message = session.scalar(query)
    if message is None:
        raise NotFound(f"no message with id {message_id}")
    return message


def resolve_message(
    session: Session,
    message: Message,
    resolution: Resolution | str,
    reason: str,
    *,
    actor: str,
) -> Message:
    """Apply a staff decision to an ``unknown`` or ``failed`` message. Raises ``InvalidInput`` before writing.

    The update is conditional on the status read, so a webhook that settled the row
    meanwhile wins and the staff member is told to look again.
    """
    try:
        resolution = Resolution(str(resolution).replace("-", "_"))
    except ValueError:
        raise InvalidInput("resolve with mark_sent, send_again or drop") from None
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidInput("say why (e.g. 'patient confirmed by phone she got it')")
    if message.status not in RESOLVABLE:
        raise InvalidInput(f"message {message.id} is {message.status.value}; only unknown or failed ones are resolved")
    before = message.status
    now = utcnow()
    note = f"staff: {resolution.value.replace('_', ' ')}: {reason}"[:500]
    values: dict[str, object]
    if resolution is Resolution.MARK_SENT:
        values = {"status": MessageStatus.SENT, "sent_at": message.sent_at or now}
    elif resolution is Resolution.SEND_AGAIN:
        # A fresh start: the original due time stays (planning owns it); next_attempt_at makes it due now.
        values = {
            "status": MessageStatus.SCHEDULED,
            "next_attempt_at": now,
            "attempts": 0,
            "last_error": None,
            "error_code": None,
            "queued_at": None,
            "sending_at": None,
            "handed_at": None,
            "provider_message_id": None,
        }
    else:
        values = {"status": MessageStatus.CANCELLED}

    changed = session.execute(
        update(Message)
        .where(Message.id == message.id, Message.status == before)
        .values(**values, status_reason=note, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not changed:
        raise InvalidInput(f"message {message.id} changed meanwhile; look at it again")
    if resolution is Resolution.MARK_SENT:
        emit(session, EventType.MESSAGE_SENT, [message.id])
    session.refresh(message)
    audit(
        session,
        clinic_id=message.patient.clinic_id,
        actor=actor,
        action=_ACTION[resolution],
        subject_type="message",
        subject_id=message.id,
        patient_id=message.patient_id,
        before=before.value,
    )
    return message
