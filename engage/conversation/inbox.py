"""The staff inbox: patient replies flagged for a person, urgent ones first, then oldest first, until someone
marks them handled."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.errors import InvalidInput, NotFound
from engage.records.audit import AuditAction, audit
from engage.records.models import InboundMessage, Patient


def inbox(session: Session, clinic_id: int, *, include_handled: bool = False, limit: int = 200) -> list[InboundMessage]:
    """Flagged replies to ``clinic_id``: urgent ones (red flags, scores of 8+) first, then oldest first;
    handled ones only with ``include_handled``."""
    query = select(InboundMessage).where(InboundMessage.clinic_id == clinic_id, InboundMessage.flagged.is_(True))
    if not include_handled:
        query = query.where(InboundMessage.handled_at.is_(None))
    order = (InboundMessage.urgent.desc(), InboundMessage.received_at, InboundMessage.id)
    return list(session.scalars(query.order_by(*order).limit(limit)))


def waiting_from_unknown_numbers(session: Session, clinic_id: int, *, limit: int = 200) -> list[InboundMessage]:
    """Flagged texts to ``clinic_id`` from numbers no patient has, waiting for a person, oldest first."""
    return list(
        session.scalars(
            select(InboundMessage)
            .where(
                InboundMessage.clinic_id == clinic_id,
                InboundMessage.patient_id.is_(None),
                InboundMessage.flagged.is_(True),
                InboundMessage.handled_at.is_(None),
            )
            .order_by(InboundMessage.urgent.desc(), InboundMessage.received_at, InboundMessage.id)
            .limit(limit)
        )
    )


def waiting_count(session: Session, clinic_id: int) -> int:
    """How many flagged replies to ``clinic_id`` wait for a person."""
    return (
        session.scalar(
            select(func.count())
            .select_from(InboundMessage)
            .where(
                InboundMessage.clinic_id == clinic_id,
                InboundMessage.flagged.is_(True),
                InboundMessage.handled_at.is_(None),
            )
        )
        or 0
    )


def get_reply_in_clinic(session: Session, clinic_id: int | None, reply_id: int) -> InboundMessage:
    """The reply, or ``NotFound`` when it does not exist or (``clinic_id`` given) came to another clinic."""
    reply = session.get(InboundMessage, reply_id)
    if reply is None or (clinic_id is not None and reply.clinic_id != clinic_id):
        raise NotFound(f"no reply with id {reply_id}")
    return reply


def mark_handled(session: Session, reply: InboundMessage, note: str, *, actor: str) -> InboundMessage:
    """Take a flagged reply out of the inbox with a note for colleagues. Raises ``InvalidInput``.

    Handling it again only replaces the note (and who wrote it).
    """
    note = note.strip()
    if not note:
        raise InvalidInput("add a note saying what was done (e.g. 'called back, moved to Friday')")
    if not reply.flagged:
        raise InvalidInput(f"reply {reply.id} was not flagged for staff")
    if reply.handled_at is None:
        reply.handled_at = utcnow()
    reply.handled_by = actor
    reply.handled_note = note[:2000]
    session.flush()
    audit(
        session,
        clinic_id=reply.clinic_id,
        actor=actor,
        action=AuditAction.REPLY_HANDLED,
        subject_type="inbound_message",
        subject_id=reply.id,
        patient_id=reply.patient_id,
    )
    return reply


def replies_of(session: Session, patient_id: int, limit: int = 200) -> list[InboundMessage]:
    """A patient's SMS replies, newest first."""
    return list(
        session.scalars(
            select(InboundMessage)
            .where(InboundMessage.patient_id == patient_id)
            .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
            .limit(limit)
        )
    )


def reply_json(reply: InboundMessage, patient: Patient | None = None) -> dict[str, Any]:
    """A reply for staff (the body included: staff read it to answer)."""
    return {
        "id": reply.id,
        "patient_id": reply.patient_id,
        "patient": f"{patient.first_name} {patient.last_name}" if patient else None,
        "from": reply.from_phone,
        "body": reply.body,
        "kind": reply.kind,
        "flag_reason": reply.flag_reason,
        "urgent": reply.urgent,
        "received_at": reply.received_at.isoformat(),
        "handled_at": reply.handled_at.isoformat() if reply.handled_at else None,
        "handled_by": reply.handled_by,
        "handled_note": reply.handled_note,
    }
