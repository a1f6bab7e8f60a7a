"""The inbox: flagged replies of one clinic, oldest first, until handled with a note."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.conversation.inbox import get_reply_in_clinic, inbox, mark_handled, waiting_count
from engage.errors import InvalidInput, NotFound
from engage.records.models import AuditEvent
from tests import seed


def test_flagged_replies_wait_oldest_first_until_handled_with_a_note(session: Session) -> None:
    clinic = seed.clinic(session)
    ana = seed.patient(session, clinic.id)
    first = seed.flagged_reply(session, clinic.id, ana.id, "first")
    second = seed.flagged_reply(session, clinic.id, None, "who is this?")
    assert [r.id for r in inbox(session, clinic.id)] == [first.id, second.id]
    with pytest.raises(InvalidInput, match="add a note"):
        mark_handled(session, first, "   ", actor="test")
    mark_handled(session, first, "called back, moved to Friday", actor="desk@clinic.example")
    assert [r.id for r in inbox(session, clinic.id)] == [second.id]
    assert waiting_count(session, clinic.id) == 1
    assert [r.id for r in inbox(session, clinic.id, include_handled=True)] == [first.id, second.id]
    audit = session.scalar(select(AuditEvent).where(AuditEvent.action == "reply.handled"))
    assert audit is not None and audit.subject_id == first.id and audit.actor == "desk@clinic.example"


def test_another_clinics_reply_is_not_found(session: Session) -> None:
    clinic = seed.clinic(session)
    other = seed.clinic(session, name="Elsewhere", email="front@elsewhere.example")
    theirs = seed.flagged_reply(session, other.id, None)
    assert inbox(session, clinic.id) == []
    with pytest.raises(NotFound):
        get_reply_in_clinic(session, clinic.id, theirs.id)
