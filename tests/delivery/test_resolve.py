"""Staff settle unknown and failed messages: mark sent, send again (claimable now), or drop; with a reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.delivery.claim import claim_due
from engage.delivery.resolve import get_message_in_clinic, resolve_message
from engage.errors import InvalidInput, NotFound
from engage.records.models import AuditEvent, Message, MessageStatus
from tests import seed


def _message_in(session: Session, status: MessageStatus) -> tuple[int, Message]:
    clinic = seed.clinic(session)
    ana = seed.patient(session, clinic.id, email="ana@example.com")
    seed.enrolled(session, ana.id)
    message = seed.messages(session, ana.id)[0]
    message.status = status
    message.handed_at = utcnow()
    message.last_error = "timeout"
    session.flush()
    return clinic.id, message


def test_unknown_message_marked_sent_keeps_the_reason_and_is_audited(session: Session) -> None:
    clinic_id, message = _message_in(session, MessageStatus.UNKNOWN)
    resolve_message(session, message, "mark_sent", "patient confirmed by phone", actor="desk@clinic.example")
    assert message.status is MessageStatus.SENT and message.sent_at is not None
    assert message.status_reason == "staff: mark sent: patient confirmed by phone"
    audit = session.scalar(select(AuditEvent).where(AuditEvent.action == "message.mark_sent"))
    assert audit is not None and audit.subject_id == message.id and audit.detail["before"] == "unknown"


def test_failed_message_sent_again_is_claimed_by_the_next_tick(session: Session) -> None:
    _, message = _message_in(session, MessageStatus.FAILED)
    resolve_message(session, message, "send-again", "number fixed", actor="test")
    assert message.status is MessageStatus.SCHEDULED and message.attempts == 0 and message.handed_at is None
    session.commit()
    assert message.id in claim_due(10, now=max(message.due_at, utcnow()) + timedelta(minutes=1))


def test_drop_cancels_and_a_settled_message_cannot_be_resolved(session: Session) -> None:
    _, message = _message_in(session, MessageStatus.UNKNOWN)
    resolve_message(session, message, "drop", "appointment already happened", actor="test")
    assert message.status is MessageStatus.CANCELLED
    with pytest.raises(InvalidInput, match="only unknown or failed"):
        resolve_message(session, message, "mark_sent", "oops", actor="test")
    with pytest.raises(InvalidInput, match="say why"):
        resolve_message(session, message, "drop", "", actor="test")


def test_another_clinics_message_is_not_found(session: Session) -> None:
    _, message = _message_in(session, MessageStatus.UNKNOWN)
    other = seed.clinic(session, name="Elsewhere", email="front@elsewhere.example")
    with pytest.raises(NotFound):
        get_message_in_clinic(session, other.id, message.id)
    assert session.get(Message, message.id) is not None
