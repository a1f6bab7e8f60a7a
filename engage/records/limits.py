"""Length limits of what staff type, read from the models' own columns and checked before the database.

Without this, PostgreSQL refuses a 300-character name with a traceback and SQLite stores it
whole. Every ``String(n)`` column of the records staff write (clinics, patients, plans,
enrollments, staff users, API tokens) is checked at flush time, whichever way the record
came (CLI, staff pages, API); a ``Text`` column is limited by its ``info["max_length"]``.
The error names the field and the limit, and the caller's transaction writes nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, event, inspect
from sqlalchemy.orm import Session, UOWTransaction

from engage.errors import InvalidInput
from engage.records.models import ApiToken, Clinic, Enrollment, Patient, StaffUser, TreatmentPlan

#: Records whose text comes from people; internal records (the outbox, events) are written by engage itself.
LIMITED: tuple[type[Any], ...] = (Clinic, Patient, TreatmentPlan, Enrollment, StaffUser, ApiToken)


class TooLong(InvalidInput):
    """A text field is longer than its column allows; ``field`` is the attribute name (for forms and the API)."""

    def __init__(self, model: type[Any], field: str, limit: int, length: int) -> None:
        label = f"{model.__tablename__.replace('_', ' ')} {field.replace('_', ' ')}"
        super().__init__(f"the {label} is too long: at most {limit} characters, not {length}", field=field)
        self.model, self.limit = model, limit


def max_length(model: type[Any], field: str) -> int | None:
    """The most characters ``model.field`` takes: its ``String(n)``, or ``info["max_length"]``; None: no limit."""
    column: Column[Any] = model.__table__.c[field]
    return column.info.get("max_length") or getattr(column.type, "length", None)


def check_values(model: type[Any], **values: Any) -> None:
    """Raise :class:`TooLong` for the first of ``values`` (field name -> value) over ``model``'s limit.

    For bulk writes that bypass the ORM's flush (``insert(...)`` statements).
    """
    for field, value in values.items():
        limit = max_length(model, field)
        if isinstance(value, str) and limit is not None and len(value) > limit:
            raise TooLong(model, field, limit, len(value))


def check_lengths(record: Any) -> None:
    """Raise :class:`TooLong` for the first text attribute of ``record`` over its column's limit."""
    model = type(record)
    for attr in inspect(model).column_attrs:
        value = getattr(record, attr.key, None)
        if not isinstance(value, str):
            continue
        limit = max_length(model, attr.columns[0].key)
        if limit is not None and len(value) > limit:
            raise TooLong(model, attr.key, limit, len(value))


@event.listens_for(Session, "before_flush")
def _check_before_flush(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    for record in (*session.new, *session.dirty):
        if isinstance(record, LIMITED):
            check_lengths(record)
