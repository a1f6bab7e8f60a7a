"""Enrolling across clinics: another clinic's plan answers exactly like a plan that does not exist."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from engage.errors import InvalidInput, NotFound
from engage.schedule.enrollments import enroll
from tests import seed


def test_another_clinics_plan_is_answered_as_if_it_did_not_exist(session: Session) -> None:
    ours = seed.clinic(session)
    theirs = seed.clinic(session, name="Elsewhere Physio", email="front@elsewhere.example")
    ana = seed.patient(session, ours.id)
    ben = seed.patient(session, ours.id, "Ben", "Okafor")
    their_plan = seed.enrolled(session, seed.patient(session, theirs.id, "Cy", "Lee").id)
    ben_plan = seed.enrolled(session, ben.id)
    with pytest.raises(NotFound) as foreign:
        enroll(session, ana.id, their_plan, seed.SEQUENCE, enrolled_by="test")
    with pytest.raises(NotFound) as missing:
        enroll(session, ana.id, 987654, seed.SEQUENCE, enrolled_by="test")
    assert str(foreign.value) == str(missing.value).replace("987654", str(their_plan))
    with pytest.raises(InvalidInput, match="belongs to another patient"):  # the same clinic's: no secret to keep
        enroll(session, ana.id, ben_plan, seed.SEQUENCE, enrolled_by="test")
