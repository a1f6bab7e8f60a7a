"""Stored episode facts stay equal to the definition after every kind of write to scores and visits, on both
backends: the figures are read once (every row stored), then changed through the ordinary write paths, then
each enrollment's stored facts are compared with :func:`engage.outcomes.episodes.compute` again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.conversation.measures import record_score
from engage.db import session_factory
from engage.outcomes import facts, stored_facts
from engage.outcomes.summary import Filters, load_episodes, outcome_summary
from engage.records.models import Appointment, AppointmentStatus, Enrollment, EpisodeFact, Outcome
from engage.schedule.appointments import add_appointment, move_appointment, set_appointment_status
from tests.outcomes import world as fixture
from tests.outcomes.test_episodes import FIELDS, _reference


def _agree(session: Session, clinic_id: int) -> None:
    now = utcnow()
    found = {e.enrollment_id: e for e in load_episodes(session, clinic_id, Filters(), now).episodes}
    for enrollment in session.scalars(select(Enrollment)):
        expected, actual = _reference(session, enrollment, now), found[enrollment.id]
        for name in FIELDS:
            assert getattr(actual, name) == getattr(expected, name), (enrollment.patient_id, name)


def _stale(session: Session) -> int:
    return stored_facts.stale_count(session, list(session.scalars(select(Enrollment.id))))


def _plan_of(session: Session, patient_id: int) -> int:
    return session.scalars(select(Enrollment.plan_id).where(Enrollment.patient_id == patient_id)).one()


def _visits(session: Session, patient_id: int) -> list[Appointment]:
    return list(
        session.scalars(
            select(Appointment)
            .where(Appointment.plan_id == _plan_of(session, patient_id))
            .order_by(Appointment.start_at)
        )
    )


def test_every_write_to_scores_and_visits_marks_exactly_its_enrollments_stale(session: Session) -> None:
    world = fixture.build(session)
    session.commit()
    assert _stale(session) == 12  # nothing stored yet: the first read computes every row
    before = outcome_summary(session, world.clinic_id)
    session.commit()
    assert _stale(session) == 0
    assert outcome_summary(session, world.clinic_id) == before  # from the stored rows alone

    first = utcnow() - timedelta(days=20)
    lee = world.patients["lee"]
    record_score(session, lee[6], 7, actor="test", at=first - timedelta(days=1))  # a baseline at the desk
    record_score(session, lee[6], 3, actor="test", at=first + timedelta(days=10))
    session.commit()
    assert _stale(session) == 1
    _agree(session, world.clinic_id)
    session.commit()
    assert _stale(session) == 0

    # The first visit cancelled: the second becomes the first session, the baseline window moves with it.
    set_appointment_status(session, _visits(session, lee[0])[0].id, AppointmentStatus.CANCELLED, actor="test")
    # A visit moved a day later; one more visit booked; who treated changed on a visit.
    move_appointment(
        session, _visits(session, lee[1])[-1].id, first + timedelta(days=22), actor="test", allow_past=True
    )
    add_appointment(
        session, plan_id=_plan_of(session, lee[2]), start=first + timedelta(days=30), actor="test", allow_past=True
    )
    _visits(session, lee[3])[0].practitioner_id = world.diaz
    session.commit()
    assert _stale(session) == 4
    _agree(session, world.clinic_id)
    session.commit()

    # A sync's bulk insert of visits (no ORM objects: the statement's parameters name the plan).
    plan = _plan_of(session, lee[4])
    start = first + timedelta(days=13)
    session.scalars(
        insert(Appointment).returning(Appointment.id),
        [
            {
                "plan_id": plan,
                "start_at": start,
                "end_at": start + timedelta(minutes=45),
                "status": AppointmentStatus.COMPLETED,
            }
        ],
    ).all()
    session.commit()
    assert _stale(session) == 1
    _agree(session, world.clinic_id)
    session.commit()
    assert _stale(session) == 0

    # A score removed (no code path does today; the mapper event covers it) and a visit confirmed (no fact reads it).
    session.delete(session.scalars(select(Outcome).where(Outcome.patient_id == lee[5])).first())
    _visits(session, lee[4])[0].confirmed_by = "desk@clinic.example"
    session.commit()
    assert _stale(session) == 1
    _agree(session, world.clinic_id)
    session.commit()
    assert _stale(session) == 0

    # A Core delete of a score through the session (no mapper event, no rows named): every stored fact is stale.
    scores = Outcome.__table__
    session.execute(delete(scores).where(scores.c.patient_id == lee[6]))
    session.commit()
    assert _stale(session) == 12
    _agree(session, world.clinic_id)


def test_a_new_enrollment_is_computed_on_the_next_read(session: Session) -> None:
    world = fixture.build(session)
    session.commit()
    assert outcome_summary(session, world.clinic_id)["enrolled"] == 12
    session.commit()
    patient = world.patients["lee"][7]
    session.add(Enrollment(patient_id=patient, plan_id=_plan_of(session, patient), sequence_key="other-sequence"))
    session.commit()
    assert outcome_summary(session, world.clinic_id)["enrolled"] == 13


def test_a_score_committed_while_the_facts_are_computed_leaves_the_row_stale(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader stores what it computed only under the version it read: the writer's bump wins."""
    with session_factory()() as session:
        world = fixture.build(session)
        session.commit()
        outcome_summary(session, world.clinic_id)
        session.commit()
        patient = world.patients["lee"][6]
        record_score(session, patient, 7, actor="test", at=utcnow() - timedelta(days=21))
        session.commit()
        enrollment = session.scalars(select(Enrollment.id).where(Enrollment.patient_id == patient)).one()

    real = facts.compute

    def compute_while_a_score_arrives(session: Session, ids: list[int]) -> object:
        found = real(session, ids)  # computed before the writer commits: without its score
        with session_factory()() as writer:
            record_score(writer, patient, 2, actor="test", at=utcnow() - timedelta(days=10))
            writer.commit()
        return found

    monkeypatch.setattr(facts, "compute", compute_while_a_score_arrives)
    with session_factory()() as session:
        assert stored_facts.refresh(session, world.clinic_id) == 1
        session.commit()
        row = session.get_one(EpisodeFact, enrollment)
        assert row.computed_version != row.version  # not stored as fresh: the writer bumped it meanwhile
    monkeypatch.setattr(facts, "compute", real)
    with session_factory()() as session:
        episodes = load_episodes(session, world.clinic_id, Filters()).episodes
        mine = next(e for e in episodes if e.enrollment_id == enrollment)
        assert (mine.baseline, mine.latest) == (7, 2)
