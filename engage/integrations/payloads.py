"""What each event says: ids, kinds, statuses, scores and times; never a message's words, a name or an address.

Bodies are built at delivery from the rows the events are about. Those facts do not change once the event
happened (a sent message's channel, a reply's kind, a score, a consent event), so a retry carries the same body.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.records.models import Appointment, ConsentEvent, InboundMessage, Message, MessageStatus, Outcome, Patient
from engage.records.outgoing_webhooks import EventType, WebhookEvent

_FAILURES = {MessageStatus.FAILED, MessageStatus.UNDELIVERED, MessageStatus.BOUNCED}


def bodies(session: Session, events: Sequence[WebhookEvent]) -> dict[int, dict[str, Any]]:
    """The JSON body of each event, by ``WebhookEvent.id``; an event whose row is gone gets ``data: null``."""
    by_type: dict[EventType, set[int]] = defaultdict(set)
    for event in events:
        by_type[event.type].add(event.subject_id)
    data: dict[tuple[EventType, int], dict[str, Any]] = {}
    for event_type, ids in by_type.items():
        for subject_id, fields in _LOADERS[event_type](session, sorted(ids)).items():
            data[event_type, subject_id] = fields
    return {
        event.id: {
            "id": event.event_id,
            "type": event.type.value,
            "timestamp": event.occurred_at.isoformat(),
            "data": data.get((event.type, event.subject_id)),
        }
        for event in events
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _messages(session: Session, ids: list[int], *, failed: bool) -> dict[int, dict[str, Any]]:
    rows = session.execute(
        select(
            Message.id,
            Message.patient_id,
            Patient.external_id,
            Patient.clinic_id,
            Message.appointment_id,
            Appointment.external_id.label("appointment_external_id"),
            Message.channel,
            Message.step_key,
            Message.status,
            Message.error_code,
            Message.provider,
            Message.provider_message_id,
            Message.sent_at,
        )
        .join(Patient, Patient.id == Message.patient_id)
        .outerjoin(Appointment, Appointment.id == Message.appointment_id)
        .where(Message.id.in_(ids))
    )
    return {
        row.id: {
            "message_id": row.id,
            "clinic_id": row.clinic_id,
            "patient_id": row.patient_id,
            "patient_external_id": row.external_id,
            "appointment_id": row.appointment_id,
            "appointment_external_id": row.appointment_external_id,
            "channel": row.channel.value,
            "step": row.step_key,
            "provider": row.provider,
            "provider_message_id": row.provider_message_id,
            "sent_at": _iso(row.sent_at),
            # How it failed: failed (refused), undelivered or bounced, and the vendor's code.
            **(
                {
                    "status": row.status.value if row.status in _FAILURES else MessageStatus.FAILED.value,
                    "error_code": row.error_code,
                }
                if failed
                else {}
            ),
        }
        for row in rows
    }


def _sent(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    return _messages(session, ids, failed=False)


def _failed(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    return _messages(session, ids, failed=True)


def _replies(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    rows = session.execute(
        select(
            InboundMessage.id,
            InboundMessage.clinic_id,
            InboundMessage.patient_id,
            Patient.external_id,
            InboundMessage.kind,
            InboundMessage.flagged,
            InboundMessage.urgent,
            InboundMessage.received_at,
            InboundMessage.appointment_id,
            Appointment.external_id.label("appointment_external_id"),
        )
        .outerjoin(Patient, Patient.id == InboundMessage.patient_id)
        .outerjoin(Appointment, Appointment.id == InboundMessage.appointment_id)
        .where(InboundMessage.id.in_(ids))
    )
    return {
        row.id: {
            "reply_id": row.id,
            "clinic_id": row.clinic_id,
            "patient_id": row.patient_id,
            "patient_external_id": row.external_id,
            "kind": row.kind,
            "needs_staff": row.flagged,
            "urgent": row.urgent,
            "received_at": _iso(row.received_at),
            # The visit a confirmation or call-back request was about (None for other replies).
            "appointment_id": row.appointment_id,
            "appointment_external_id": row.appointment_external_id,
        }
        for row in rows
    }


def _outcomes(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    rows = session.execute(
        select(
            Outcome.id,
            Outcome.patient_id,
            Patient.external_id,
            Patient.clinic_id,
            Outcome.score,
            Outcome.source,
            Outcome.prompt_message_id,
            Outcome.recorded_at,
        )
        .join(Patient, Patient.id == Outcome.patient_id)
        .where(Outcome.id.in_(ids))
    )
    return {
        row.id: {
            "outcome_id": row.id,
            "clinic_id": row.clinic_id,
            "patient_id": row.patient_id,
            "patient_external_id": row.external_id,
            "score": row.score,
            "source": row.source,
            "prompt_message_id": row.prompt_message_id,
            "recorded_at": _iso(row.recorded_at),
        }
        for row in rows
    }


def _consents(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    rows = session.execute(
        select(
            ConsentEvent.id,
            ConsentEvent.patient_id,
            Patient.external_id,
            Patient.clinic_id,
            ConsentEvent.channel,
            ConsentEvent.state,
            ConsentEvent.source,
            ConsentEvent.at,
        )
        .join(Patient, Patient.id == ConsentEvent.patient_id)
        .where(ConsentEvent.id.in_(ids))
    )
    return {
        row.id: {
            "consent_event_id": row.id,
            "clinic_id": row.clinic_id,
            "patient_id": row.patient_id,
            "patient_external_id": row.external_id,
            "channel": row.channel.value,
            "state": row.state.value,
            "source": row.source,
            "at": _iso(row.at),
        }
        for row in rows
    }


_LOADERS: dict[EventType, Callable[[Session, list[int]], dict[int, dict[str, Any]]]] = {
    EventType.MESSAGE_SENT: _sent,
    EventType.MESSAGE_FAILED: _failed,
    EventType.REPLY_RECEIVED: _replies,
    EventType.OUTCOME_RECORDED: _outcomes,
    EventType.CONSENT_CHANGED: _consents,
}
