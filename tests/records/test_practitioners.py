"""Practitioners: added by hand, named by a CSV column or a FHIR participant, matched by external id."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.errors import InvalidInput
from engage.records.models import Appointment, Practitioner, TreatmentPlan
from engage.records.plans import create_plan
from engage.records.practitioners import add_practitioner
from engage.sync.csv_import import import_appointments
from engage.sync.fhir import sync_bundle
from engage.sync.records import SyncErrors
from tests import seed

HEADER = "patient_external_id,first_name,last_name,phone,appointment_external_id,start,sequence"


def _day(days: int) -> str:
    return (utcnow() + timedelta(days=days)).strftime("%Y-%m-%dT10:00")


def test_a_staff_practitioner_and_a_named_one(session: Session) -> None:
    clinic = seed.clinic(session)
    seed.staff(session, clinic.id, "lee@clinic.example", role="practitioner")
    seed.staff(session, clinic.id, "desk@clinic.example", role="front_desk")
    lee = add_practitioner(session, clinic.id, staff_email="lee@clinic.example", actor="test")
    assert (lee.name, lee.staff_user_id is not None) == ("Lee", True)
    named = add_practitioner(session, clinic.id, name="Dr. Diaz", external_id="DR-2", actor="test")
    assert named.external_id == "DR-2"
    with pytest.raises(InvalidInput, match="not a practitioner"):
        add_practitioner(session, clinic.id, staff_email="desk@clinic.example", actor="test")
    with pytest.raises(InvalidInput, match="already"):
        add_practitioner(session, clinic.id, staff_email="lee@clinic.example", actor="test")
    with pytest.raises(InvalidInput, match="external id"):
        add_practitioner(session, clinic.id, name="Someone", external_id="DR-2", actor="test")
    with pytest.raises(InvalidInput, match="needs a name"):
        add_practitioner(session, clinic.id, name="  ", actor="test")


def test_a_plan_names_its_practitioner_on_every_visit(session: Session) -> None:
    clinic = seed.clinic(session)
    other = seed.clinic(session, name="Elsewhere", email="x@elsewhere.example")
    patient = seed.patient(session, clinic.id)
    lee = add_practitioner(session, clinic.id, name="Dr. Lee", actor="test")
    theirs = add_practitioner(session, other.id, name="Dr. Other", actor="test")
    plan = create_plan(
        session,
        patient_id=patient.id,
        condition="sciatica",
        modality="dry needling",
        first=_day(3),
        sessions=2,
        every=timedelta(days=7),
        practitioner_id=lee.id,
        actor="test",
    )
    assert plan.practitioner_id == lee.id
    assert {a.practitioner_id for a in plan.appointments} == {lee.id}
    with pytest.raises(InvalidInput) as refused:
        create_plan(
            session,
            patient_id=patient.id,
            condition="sciatica",
            modality="dry needling",
            first=_day(30),
            sessions=1,
            every=timedelta(days=7),
            practitioner_id=theirs.id,
            actor="test",
        )
    assert refused.value.field == "practitioner"


def test_a_csv_column_adds_the_practitioner_once_and_matches_it_after(session: Session) -> None:
    clinic = seed.clinic(session)
    header = HEADER + ",practitioner_external_id,practitioner_name"
    first = f"{header}\nP-1,Ana,Ruiz,+14155550123,V-1,{_day(3)},{seed.SEQUENCE},DR-7,Dr. Lee\n"
    import_appointments(session, clinic.id, first, actor="test")
    again = f"{header}\nP-1,Ana,Ruiz,+14155550123,V-2,{_day(10)},{seed.SEQUENCE},DR-7,\n"
    import_appointments(session, clinic.id, again, actor="test")
    practitioners = session.scalars(select(Practitioner).where(Practitioner.clinic_id == clinic.id)).all()
    assert [(p.name, p.external_id) for p in practitioners] == [("Dr. Lee", "DR-7")]
    visits = session.scalars(select(Appointment).order_by(Appointment.start_at)).all()
    assert [v.practitioner_id for v in visits] == [practitioners[0].id] * 2
    assert session.scalar(select(TreatmentPlan.practitioner_id)) == practitioners[0].id


def test_an_unknown_practitioner_id_without_a_name_refuses_the_file(session: Session) -> None:
    clinic = seed.clinic(session)
    header = HEADER + ",practitioner_external_id"
    with pytest.raises(SyncErrors) as refused:
        import_appointments(
            session, clinic.id, f"{header}\nP-1,Ana,Ruiz,+14155550123,V-1,{_day(3)},,DR-404\n", actor="test"
        )
    assert [(e.where, e.field) for e in refused.value.sync_errors] == [("line 2", "practitioner_external_id")]
    assert session.scalar(select(Practitioner.id)) is None


def test_a_fhir_participant_refers_to_a_practitioner_of_the_bundle(session: Session) -> None:
    clinic = seed.clinic(session)
    start = (utcnow() + timedelta(days=4)).replace(microsecond=0)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:p1",
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"value": "P-1"}],
                    "name": [{"given": ["Ana"], "family": "Ruiz"}],
                    "telecom": [{"system": "phone", "value": "+14155550123"}],
                },
            },
            {
                "fullUrl": "urn:uuid:dr",
                "resource": {
                    "resourceType": "Practitioner",
                    "identifier": [{"value": "DR-9"}],
                    "name": [{"given": ["Sam"], "family": "Lee"}],
                },
            },
            {
                "resource": {
                    "resourceType": "Appointment",
                    "identifier": [{"value": "V-1"}],
                    "status": "booked",
                    "start": start.isoformat(),
                    "end": (start + timedelta(minutes=45)).isoformat(),
                    "participant": [
                        {"actor": {"reference": "urn:uuid:p1"}, "status": "accepted"},
                        {"actor": {"reference": "urn:uuid:dr"}, "status": "accepted"},
                    ],
                }
            },
        ],
    }
    answer = sync_bundle(session, clinic.id, bundle, sequence=seed.SEQUENCE, actor="test")
    practitioner = session.scalars(select(Practitioner)).one()
    assert (practitioner.name, practitioner.external_id) == ("Sam Lee", "DR-9")
    assert answer["entry"][1]["response"]["location"] == f"Practitioner/{practitioner.id}"
    assert session.scalar(select(Appointment.practitioner_id)) == practitioner.id
