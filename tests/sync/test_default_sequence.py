"""A clinic's default sequence (issue 23): a synced appointment without a ``sequence``, for a patient with no
active plan, is planned in it; a clinic's own published sequence is a known ``sequence`` too."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.db import session_scope
from engage.errors import NotFound
from engage.records.models import Clinic, Enrollment, TreatmentPlan
from engage.schedule import versions
from engage.schedule.catalogue import set_default_sequence
from engage.schedule.publish import publish_draft
from engage.sync.csv_import import import_appointments
from engage.sync.records import SyncErrors
from tests.cli import engage

HEADER = "patient_external_id,first_name,last_name,phone,email,appointment_external_id,start,duration,sequence\n"
OWN = "our-sciatica"


def day(n: int) -> str:
    return (utcnow() + timedelta(days=n)).strftime("%Y-%m-%dT09:00")


def csv(sequence: str = "") -> str:
    return HEADER + (
        f"P1,Ana,Ruiz,+14155550123,,A1,{day(5)},45,{sequence}\nP1,Ana,Ruiz,+14155550123,,A2,{day(12)},45,{sequence}\n"
    )


def _own_sequence(session: Session, clinic_id: int) -> None:
    versions.start_draft(session, clinic_id, OWN, actor="admin", from_library="dry-needling-sciatica")
    publish_draft(session, clinic_id, OWN, actor="admin", current_patients=False)
    session.commit()


def test_without_a_default_such_an_appointment_is_refused_as_before(session: Session, clinic_id: int) -> None:
    with pytest.raises(SyncErrors, match="default sequence"):
        import_appointments(session, clinic_id, csv(), actor="test")


def test_the_default_sequence_plans_an_appointment_that_names_none(session: Session, clinic_id: int) -> None:
    _own_sequence(session, clinic_id)
    with pytest.raises(NotFound, match="no sequence 'nope'"):
        set_default_sequence(session, clinic_id, "nope", actor="admin")
    set_default_sequence(session, clinic_id, OWN, actor="admin")
    session.commit()
    report = import_appointments(session, clinic_id, csv(), actor="test")
    session.commit()
    assert report.plans_created == 1
    [enrollment] = session.scalars(select(Enrollment)).all()
    assert (enrollment.sequence_key, enrollment.sequence_version) == (OWN, 1)
    plan = session.get_one(TreatmentPlan, enrollment.plan_id)
    assert plan.external_id == f"P1/{OWN}" and len(plan.appointments) == 2
    # A later appointment without a sequence joins the patient's active plan, as before.
    later = HEADER + f"P1,Ana,Ruiz,+14155550123,,A3,{day(19)},45,\n"
    assert import_appointments(session, clinic_id, later, actor="test").plans_created == 0


def test_a_clinics_own_sequence_is_a_known_sequence_and_the_cli_sets_the_default(
    session: Session, clinic_id: int
) -> None:
    _own_sequence(session, clinic_id)
    assert import_appointments(session, clinic_id, csv(OWN), actor="test").plans_created == 1
    session.commit()
    assert engage("sequences", "default", OWN, "--clinic", str(clinic_id), "--json").json["default_sequence"] == OWN
    with session_scope() as check:
        assert check.get_one(Clinic, clinic_id).default_sequence == OWN
    assert engage("sequences", "default", "--none", "--clinic", str(clinic_id), "--json").json == {
        "clinic_id": clinic_id,
        "default_sequence": None,
    }
