"""The outbox as staff browse it: a clinic's messages, filtered, a page at a time (newest first)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.errors import InvalidInput
from engage.records.models import Channel, Message, MessageStatus, Patient

MAX_PER_PAGE = 200


def list_messages(
    session: Session,
    clinic_id: int,
    *,
    status: str | None = None,
    channel: str | None = None,
    patient_id: int | None = None,
    due_from: datetime | None = None,
    due_to: datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Message]:
    """Messages of ``clinic_id``'s patients, newest id first, those below ``before_id`` (the page cursor).

    Filters: ``status`` and ``channel`` (their words, e.g. ``failed``, ``sms``), one patient, and a
    due-time range. Raises ``InvalidInput`` (with the field) for an unknown status or channel.
    """
    if not 1 <= limit <= MAX_PER_PAGE:
        raise InvalidInput(f"a page holds 1 to {MAX_PER_PAGE} messages", field="query:limit")
    query = select(Message).join(Patient, Patient.id == Message.patient_id).where(Patient.clinic_id == clinic_id)
    if status is not None:
        try:
            query = query.where(Message.status == MessageStatus(status))
        except ValueError:
            words = ", ".join(s.value for s in MessageStatus)
            raise InvalidInput(f"unknown status {status!r}: one of {words}", field="query:status") from None
    if channel is not None:
        try:
            query = query.where(Message.channel == Channel(channel))
        except ValueError:
            raise InvalidInput(f"unknown channel {channel!r}: sms or email", field="query:channel") from None
    if patient_id is not None:
        query = query.where(Message.patient_id == patient_id)
    if due_from is not None:
        query = query.where(Message.due_at >= due_from)
    if due_to is not None:
        query = query.where(Message.due_at < due_to)
    if before_id is not None:
        query = query.where(Message.id < before_id)
    return list(session.scalars(query.order_by(Message.id.desc()).limit(limit)))


def message_json(message: Message, timezone: str | None = None) -> dict[str, Any]:
    """One outbox row for staff (no body: it is rendered at send time). ``timezone`` adds the local due time."""
    return {
        "id": message.id,
        "enrollment_id": message.enrollment_id,
        "patient_id": message.patient_id,
        "appointment_id": message.appointment_id,
        "step": message.step_key,
        "occurrence": message.occurrence,
        "channel": message.channel.value,
        "template": message.template,
        "due_at": message.due_at.isoformat(),
        "local_due_at": message.due_at.astimezone(ZoneInfo(timezone)).isoformat() if timezone else None,
        "status": message.status.value,
        "reason": message.status_reason,
    }
