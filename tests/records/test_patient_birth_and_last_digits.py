"""Two John Smiths told apart: a patient's optional date of birth (validated, searchable as a date), and a phone
search by the last 4 or more digits a patient reads out."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.orm import Session

from engage.records.patient_search import search_patients
from engage.records.patients import FieldErrors, add_patient, update_patient
from tests import seed


@pytest.fixture
def clinic_id(session: Session) -> int:
    clinic = seed.clinic(session)
    add_patient(
        session,
        clinic_id=clinic.id,
        first_name="John",
        last_name="Smith",
        phone="+12125550142",
        date_of_birth="1980-03-14",
        actor="test",
    )
    add_patient(
        session,
        clinic_id=clinic.id,
        first_name="John",
        last_name="Smith",
        phone="+17185550199",
        date_of_birth="07/02/1955",
        actor="test",
    )
    seed.patient(session, clinic.id, "Ana", "Ruiz", phone="+14155550123")
    other = seed.clinic(session, name="Elsewhere", email="front@elsewhere.example")
    seed.patient(session, other.id, "Zoe", "Other", phone="+14155550142")
    session.flush()
    return clinic.id


def _found(session: Session, clinic_id: int, query: str) -> list[tuple[str, date | None]]:
    return [(p.phone or "", p.date_of_birth) for p in search_patients(session, clinic_id, query).patients]


@pytest.mark.parametrize("typed", ["0142", "555-0142", "5550142", " 50142 "])
def test_the_last_digits_of_a_phone_find_the_patient_of_this_clinic(
    session: Session, clinic_id: int, typed: str
) -> None:
    assert _found(session, clinic_id, typed) == [("+12125550142", date(1980, 3, 14))]


def test_three_digits_are_not_enough_to_search_a_phone(session: Session, clinic_id: int) -> None:
    assert _found(session, clinic_id, "142") == []


@pytest.mark.parametrize("typed", ["john smith 1955-07-02", "07/02/1955", "smith 07/02/1955"])
def test_a_date_of_birth_tells_two_john_smiths_apart(session: Session, clinic_id: int, typed: str) -> None:
    assert _found(session, clinic_id, typed) == [("+17185550199", date(1955, 7, 2))]


@pytest.mark.parametrize(
    ("typed", "why"),
    [("14/03/1980", "is not a date"), ("2999-01-01", "between 1900 and today"), ("1850-01-01", "between 1900")],
)
def test_a_bad_date_of_birth_is_refused_naming_the_field_and_nothing_is_written(
    session: Session, clinic_id: int, typed: str, why: str
) -> None:
    [patient] = [p for p in search_patients(session, clinic_id, "ana").patients]
    with pytest.raises(FieldErrors) as caught:
        update_patient(session, patient, date_of_birth=typed, actor="test")
    assert why in caught.value.errors["date_of_birth"]
    assert patient.date_of_birth is None


def test_a_date_of_birth_can_be_added_and_cleared(session: Session, clinic_id: int) -> None:
    [patient] = search_patients(session, clinic_id, "ana").patients
    assert update_patient(session, patient, date_of_birth="1990-01-31", actor="test") == ["date_of_birth"]
    assert patient.date_of_birth == date(1990, 1, 31)
    assert update_patient(session, patient, date_of_birth="", actor="test") == ["date_of_birth"]
    assert patient.date_of_birth is None
