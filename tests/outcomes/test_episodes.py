"""The database's episode facts agree with the pure definition (:func:`engage.outcomes.episodes.compute`), on
both backends, for the fixture plus edge cases: a score exactly 7 days before, a cancelled first visit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.conversation.measures import record_score
from engage.outcomes.episodes import EpisodeInput, Score, compute
from engage.outcomes.summary import Filters, load_episodes
from engage.records.models import Appointment, AppointmentStatus, Enrollment, Measure, Outcome
from tests.outcomes import world as fixture

FIELDS = ("baseline", "latest", "follow_ups", "final", "two_points", "thirty_percent", "worsened", "sessions_to_mcid")


def _reference(session: Session, enrollment: Enrollment, now: object) -> object:
    visits = session.scalars(
        select(Appointment)
        .where(Appointment.plan_id == enrollment.plan_id, Appointment.status != AppointmentStatus.CANCELLED)
        .order_by(Appointment.start_at)
    ).all()
    scores = session.execute(
        select(Outcome.recorded_at, Outcome.score).where(
            Outcome.patient_id == enrollment.patient_id, Outcome.measure == Measure.NPRS
        )
    ).all()
    data = EpisodeInput(
        enrollment.id,
        enrollment.patient_id,
        tuple(v.start_at for v in visits),
        visits[0].end_at,
        tuple(Score(at, score) for at, score in scores),
    )
    return compute(data, now)  # type: ignore[arg-type]


def test_the_database_and_the_definition_agree(session: Session) -> None:
    world = fixture.build(session)
    first = utcnow() - timedelta(days=20)
    edge, cancelled = world.patients["lee"][6], world.patients["lee"][7]
    record_score(session, edge, 9, actor="test", at=first - timedelta(days=7))  # exactly 7 days: a baseline
    record_score(session, edge, 5, actor="test", at=first + timedelta(days=9))
    enrollment = session.scalars(select(Enrollment).where(Enrollment.patient_id == cancelled)).one()
    visits = session.scalars(
        select(Appointment).where(Appointment.plan_id == enrollment.plan_id).order_by(Appointment.start_at)
    ).all()
    visits[0].status = AppointmentStatus.CANCELLED  # the second visit becomes the first session
    record_score(session, cancelled, 6, actor="test", at=visits[1].start_at - timedelta(days=1))
    record_score(session, cancelled, 2, actor="test", at=visits[1].start_at + timedelta(days=3))
    session.commit()
    now = utcnow()
    found = {e.enrollment_id: e for e in load_episodes(session, world.clinic_id, Filters(), now).episodes}
    assert len(found) == 12
    for enrollment in session.scalars(select(Enrollment)):
        expected, actual = _reference(session, enrollment, now), found[enrollment.id]
        for name in FIELDS:
            assert getattr(actual, name) == getattr(expected, name), (enrollment.patient_id, name)
        if getattr(expected, "days_to_mcid", None) is not None:
            assert actual.days_to_mcid == pytest.approx(expected.days_to_mcid, abs=1e-3)  # type: ignore[attr-defined]
    assert found_by_patient(found, edge).baseline == 9
    assert found_by_patient(found, cancelled).both is True


def found_by_patient(found: dict[int, object], patient_id: int) -> object:
    return next(e for e in found.values() if e.patient_id == patient_id)  # type: ignore[attr-defined]
