"""The batch writes publishing uses (engage.schedule.reconcile, engage.schedule.replan): values sent to
PostgreSQL as one array literal come back exactly, whatever characters a text holds; a publish in many chunks
(each chunk's writes made while the next is planned) leaves every enrollment as one chunk would."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from engage import clock
from engage.db import session_factory
from engage.records.models import Enrollment
from engage.schedule import replan
from engage.schedule.publish import PublishSummary, publish_draft
from engage.schedule.reconcile import _array_literal
from tests.schedule.test_publish import ADMIN, ENROLLED_AT, SEQ, UTC, _reminder_at_18, _reminders, _rows, _world

AWKWARD = ["plain", 'a "quoted" word', "back\\slash", "\\", '"', "comma, and {braces}", "NULL", "", " spaced ", "ünï"]


def test_an_array_literal_reads_back_as_the_values_it_was_made_of(pg_url: str) -> None:
    with session_factory()() as session:
        values = [*AWKWARD, None, '{"session_number": 1, "note": "x\\\\y"}']
        found = session.execute(text("SELECT CAST(CAST(:a AS text) AS text[])"), {"a": _array_literal(values)}).scalar()
        assert found == values
        numbers = session.execute(
            text("SELECT CAST(CAST(:a AS text) AS integer[])"), {"a": _array_literal(["1", None, "-7"])}
        ).scalar()
        assert numbers == [1, None, -7]


def test_a_publish_in_many_chunks_writes_each_while_planning_the_next(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One enrollment a chunk: each chunk's largest UPDATE runs on the server while the next is planned; every
    enrollment ends as a publish in one chunk leaves it (and a dry run changes nothing)."""
    monkeypatch.setattr(replan, "CHUNK", 1)
    clinic_id, enrollment_ids = _world(session, patients_count=4)
    with clock.frozen(ENROLLED_AT + timedelta(hours=1)):
        _reminder_at_18(session, clinic_id)
        before = {e: _rows(session, e) for e in enrollment_ids}
        dry = publish_draft(session, clinic_id, SEQ, actor=ADMIN, current_patients=True, dry_run=True)
        assert dry == PublishSummary(version=1, changed=12, cancelled=0, added=0)
        assert {e: _rows(session, e) for e in enrollment_ids} == before
        real = publish_draft(session, clinic_id, SEQ, actor=ADMIN, current_patients=True)
        session.commit()
    assert real == dry
    for enrollment_id in enrollment_ids:
        rows = _rows(session, enrollment_id)
        assert [due for due, _ in _reminders(rows)] == [datetime(2030, 6, d, 22, 0, tzinfo=UTC) for d in (9, 16, 23)]
        assert {k: v for k, v in rows.items() if k[0] != "visit-reminder"} == {
            k: v for k, v in before[enrollment_id].items() if k[0] != "visit-reminder"
        }
        assert session.get_one(Enrollment, enrollment_id).sequence_version == 1
