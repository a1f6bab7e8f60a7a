"""Patient search: a phone number in any format, a name by word prefixes, an email; one clinic; paginated."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from engage.errors import InvalidInput
from engage.records.patient_search import search_patients, search_patients_after
from tests import seed


@pytest.fixture
def clinic_id(session: Session) -> int:
    clinic = seed.clinic(session)
    seed.patient(session, clinic.id, "Ana", "Ruiz", phone="+14155550123", email="ana@example.com")
    seed.patient(session, clinic.id, "Andrés", "Rubio", phone="+14155550199")
    seed.patient(session, clinic.id, "Tom", "Becker", phone="+17205550188", email="tom.b@example.org")
    other = seed.clinic(session, name="Elsewhere", email="front@elsewhere.example")
    seed.patient(session, other.id, "Ana", "Ruiz", phone="+14155550123")
    session.flush()
    return clinic.id


def _names(session: Session, clinic_id: int, query: str) -> list[str]:
    return [f"{p.first_name} {p.last_name}" for p in search_patients(session, clinic_id, query).patients]


@pytest.mark.parametrize("typed", ["(415) 555-0123", "415.555.0123", "+1 415 555 0123", "4155550123", "+14155550123"])
def test_a_phone_number_in_any_format_finds_the_patient(session: Session, clinic_id: int, typed: str) -> None:
    assert _names(session, clinic_id, typed) == ["Ana Ruiz"]


def test_name_words_match_the_start_of_first_or_last_name_in_any_case(session: Session, clinic_id: int) -> None:
    assert _names(session, clinic_id, "ana ru") == ["Ana Ruiz"]
    assert _names(session, clinic_id, "RU") == ["Andrés Rubio", "Ana Ruiz"]
    assert _names(session, clinic_id, "uiz") == []


def test_email_prefix_finds_the_patient(session: Session, clinic_id: int) -> None:
    assert _names(session, clinic_id, "TOM.B@") == ["Tom Becker"]


def test_wildcards_typed_in_the_box_are_taken_literally(session: Session, clinic_id: int) -> None:
    assert _names(session, clinic_id, "%") == []
    assert _names(session, clinic_id, "_na") == []


def test_another_clinics_patients_never_appear_and_pages_add_up(session: Session, clinic_id: int) -> None:
    everyone = search_patients(session, clinic_id, "", per_page=2)
    assert everyone.total == 3 and everyone.pages == 2 and len(everyone.patients) == 2
    second = search_patients(session, clinic_id, "", page=2, per_page=2)
    assert len(second.patients) == 1
    assert {p.id for p in everyone.patients} | {p.id for p in second.patients} == {
        p.id for p in search_patients(session, clinic_id, "").patients
    }
    with pytest.raises(InvalidInput):
        search_patients(session, clinic_id, "", page=0)


def test_keyset_slices_continue_after_the_last_row_in_the_same_order_as_pages(session: Session, clinic_id: int) -> None:
    for n, (first, last) in enumerate((("bea", "RUIZ"), ("Carla", "ruiz"), ("Zoe", "Becker"))):
        seed.patient(session, clinic_id, first, last, phone=f"+1415555017{n}")
    session.flush()
    everyone = [p.id for p in search_patients(session, clinic_id, "").patients]
    slices, after = [], None
    while True:
        found = search_patients_after(session, clinic_id, "", after=after, limit=2)
        slices.append([p.id for p in found.patients])
        if found.next_key is None:
            break
        after = found.next_key
    assert [i for s in slices for i in s] == everyone and [len(s) for s in slices] == [2, 2, 2]
    # A row added before the position does not move the rest; the key compares names as the database sorts them.
    seed.patient(session, clinic_id, "Aaron", "Aaronson", phone="+14155550177")
    session.flush()
    ruiz = search_patients_after(session, clinic_id, "ruiz", limit=1)
    assert ruiz.next_key is not None and ruiz.next_key.last_name == "ruiz"
    rest = search_patients_after(session, clinic_id, "ruiz", after=ruiz.next_key, limit=5)
    assert [p.first_name for p in ruiz.patients + rest.patients] == ["Ana", "bea", "Carla"] and rest.next_key is None


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("a " * 7, "at most 6 words"),
        ("ana " * 4000, "at most 254 characters"),  # 16 KB: the query that kept the database busy for minutes
        ("x" * 255, "at most 254 characters"),
    ],
)
def test_a_search_too_long_or_of_too_many_words_is_refused_with_the_bound(
    session: Session, clinic_id: int, query: str, said: str
) -> None:
    for search in (search_patients, search_patients_after):
        with pytest.raises(InvalidInput) as caught:
            search(session, clinic_id, query)
        assert said in str(caught.value) and caught.value.field == "query:q"


def test_six_words_and_a_full_length_email_are_still_searched(session: Session, clinic_id: int) -> None:
    assert _names(session, clinic_id, "a a a a a ru") == ["Andrés Rubio", "Ana Ruiz"]
    assert _names(session, clinic_id, "tom.b@" + "x" * 248) == []


def test_a_page_past_the_end_is_empty(session: Session, clinic_id: int) -> None:
    found = search_patients(session, clinic_id, "", page=10**20)
    assert found.patients == [] and found.total == 3
