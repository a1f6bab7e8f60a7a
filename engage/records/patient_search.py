"""Find a clinic's patients by name, phone number (in any format) or email address, a page at a time.

How the search box is read:

- something that parses as a valid phone number (``phonenumbers``, the clinic's country
  for numbers without ``+``) matches that exact E.164 number: ``(415) 555-0123``,
  ``415.555.0123`` and ``+1 415 555 0123`` find the same patient;
- 4 or more digits that are not a whole number (``0142``, ``555-0142``) match the end of the
  phone number: the last digits a patient reads out;
- something with an ``@`` matches email addresses starting with it;
- anything else is words, each of which must start the first or the last name
  (case-insensitive): ``ana ru`` finds Ana Ruiz; a word that is a date (``1980-03-14``,
  ``03/14/1980``) matches the date of birth instead: ``john smith 03/14/1980``.

An empty query lists everyone. A query is at most :data:`MAX_QUERY_CHARS` characters and
:data:`MAX_QUERY_WORDS` words (``InvalidInput`` beyond): each word is one more test of every
name in the clinic, so an unbounded query is a way to keep the database busy for minutes.
Results are ordered by last name, first name, id
(case-insensitive). Two ways to page through them: :func:`search_patients` by page number
(the staff app, which shows "page 3 of 7"), and :func:`search_patients_after` by keyset
(the API's cursor): it continues after the last row seen, so patients added or removed
meanwhile never shift a row onto another page or show one twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

import phonenumbers
from sqlalchemy import ColumnElement, and_, func, or_, select, tuple_
from sqlalchemy.orm import Session

from engage.config import get_settings
from engage.errors import InvalidInput
from engage.records.lookup import get
from engage.records.models import Clinic, Patient

MAX_PER_PAGE = 200
#: The longest search text (an email address fits), and the most words in one.
MAX_QUERY_CHARS = 254
MAX_QUERY_WORDS = 6


@dataclass(frozen=True)
class PatientPage:
    """One page of results: ``patients``, the ``total`` matching, and where this page is."""

    patients: list[Patient]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "page": self.page,
            "per_page": self.per_page,
            "pages": self.pages,
            "patients": [patient_summary(p) for p in self.patients],
        }


def patient_summary(patient: Patient) -> dict[str, Any]:
    return {
        "id": patient.id,
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "email": patient.email,
        "phone": patient.phone,
        "locale": patient.locale,
        "date_of_birth": patient.date_of_birth.isoformat() if patient.date_of_birth else None,
    }


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


def _as_phone(text: str, region: str) -> str | None:
    if sum(ch.isdigit() for ch in text) < 6 or any(ch.isalpha() for ch in text):
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def match_condition(query: str, region: str) -> ColumnElement[bool] | None:
    """The WHERE clause for a search box text (see the module docstring); None matches everyone.

    Raises ``InvalidInput`` (field ``query:q``) for a text over :data:`MAX_QUERY_CHARS` characters or
    :data:`MAX_QUERY_WORDS` words.
    """
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"a search is at most {MAX_QUERY_CHARS} characters", field="query:q")
    text = " ".join(query.split())
    if len(text.split()) > MAX_QUERY_WORDS:
        raise InvalidInput(f"a search is at most {MAX_QUERY_WORDS} words: a name, a phone or an email", field="query:q")
    if not text:
        return None
    phone = _as_phone(text, region)
    if phone is not None:
        return Patient.phone == phone
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) >= 4 and all(ch.isdigit() or ch in " -.()" for ch in text):
        return Patient.phone.like(f"%{digits}")
    if "@" in text:
        return Patient.email.like(_like_prefix(text.lower()), escape="\\")
    conditions: list[ColumnElement[bool]] = []
    for word in text.split():
        born = _as_date(word)
        if born is not None:
            conditions.append(Patient.date_of_birth == born)
            continue
        w = _like_prefix(word.lower())
        conditions.append(
            or_(func.lower(Patient.first_name).like(w, escape="\\"), func.lower(Patient.last_name).like(w, escape="\\"))
        )
    return and_(*conditions)


def _as_date(word: str) -> date | None:
    """A date of birth as staff type it: ``1980-03-14`` or the US ``03/14/1980``."""
    for pattern in ("%Y-%m-%d", "%m/%d/%Y"):
        try:
            return datetime.strptime(word, pattern).date()
        except ValueError:
            continue
    return None


class PatientKey(NamedTuple):
    """Where a patient stands in the search order: their names as the database sorts them, and their id."""

    last_name: str
    first_name: str
    id: int


@dataclass(frozen=True)
class PatientSlice:
    """Patients after a :class:`PatientKey`; ``next_key`` continues after the last one (None: no more)."""

    patients: list[Patient]
    next_key: PatientKey | None


def search_patients(
    session: Session, clinic_id: int, query: str = "", *, page: int = 1, per_page: int = 25
) -> PatientPage:
    """Patients of ``clinic_id`` matching ``query``, page ``page`` (from 1) of ``per_page``.

    Raises ``InvalidInput`` for a page below 1 or a page size outside 1..200.
    """
    if page < 1:
        raise InvalidInput("page numbers start at 1")
    _check_size(per_page)
    where, order = _search(session, clinic_id, query)
    total = session.scalar(select(func.count()).select_from(Patient).where(*where)) or 0
    offset = (page - 1) * per_page
    # A page past the end is empty without asking (its offset might not even fit the database's integers).
    patients = (
        list(session.scalars(select(Patient).where(*where).order_by(*order).offset(offset).limit(per_page)))
        if offset < total
        else []
    )
    return PatientPage(patients=patients, total=total, page=page, per_page=per_page)


def search_patients_after(
    session: Session, clinic_id: int, query: str = "", *, after: PatientKey | None = None, limit: int = 25
) -> PatientSlice:
    """Up to ``limit`` patients of ``clinic_id`` matching ``query`` that come after ``after`` in the search
    order (from the start without it). The keys compare in the database, as it sorts, so a key from
    ``next_key`` always continues exactly where the slice ended.

    Raises ``InvalidInput`` for a size outside 1..200.
    """
    _check_size(limit)
    where, order = _search(session, clinic_id, query)
    if after is not None:
        where.append(tuple_(*order) > tuple_(after.last_name, after.first_name, after.id))
    statement = select(Patient, order[0], order[1]).where(*where).order_by(*order).limit(limit + 1)
    rows = [(patient, last, first) for patient, last, first in session.execute(statement)]
    more = len(rows) > limit
    patients = [patient for patient, _, _ in rows[:limit]]
    next_key = PatientKey(rows[limit - 1][1], rows[limit - 1][2], patients[-1].id) if more else None
    return PatientSlice(patients=patients, next_key=next_key)


def _check_size(size: int) -> None:
    if not 1 <= size <= MAX_PER_PAGE:
        raise InvalidInput(f"a page holds 1 to {MAX_PER_PAGE} patients")


def _search(session: Session, clinic_id: int, query: str) -> tuple[list[ColumnElement[bool]], list[Any]]:
    """The WHERE clauses and the ORDER BY (lower last name, lower first name, id) of a search."""
    clinic: Clinic = get(session, Clinic, clinic_id)
    where: list[ColumnElement[bool]] = [Patient.clinic_id == clinic.id]
    condition = match_condition(query, clinic.region or get_settings().default_region)
    if condition is not None:
        where.append(condition)
    last: ColumnElement[str] = func.lower(Patient.last_name)
    first: ColumnElement[str] = func.lower(Patient.first_name)
    if condition is not None:
        # The same order, written so PostgreSQL cannot walk the list-order index: it would read most of
        # the clinic looking for a few matches (LIMIT), where fetching the matches and sorting them is quick.
        last, first = last.concat(""), first.concat("")
    return where, [last, first, Patient.id]
