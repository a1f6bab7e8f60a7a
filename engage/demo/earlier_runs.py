"""Removing earlier demo runs, so running the demo twice leaves one demo clinic (and one demo login).

The rows are found by following the database's own foreign keys down from the demo clinics, so a
table added later (one that points at a clinic, a patient or anything under them) is removed too.
Only clinics marked as the demo's (their sender email) are touched.
"""

from __future__ import annotations

import warnings

from sqlalchemy import MetaData, delete, or_, select
from sqlalchemy.exc import SAWarning
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement


def remove_clinics(session: Session, clinic_ids: list[int]) -> int:
    """Delete the clinics ``clinic_ids`` and every row that belongs to them; returns how many clinics."""
    if not clinic_ids:
        return 0
    metadata = MetaData()
    with warnings.catch_warnings():  # expression indexes are not reflected; only the foreign keys matter here
        warnings.simplefilter("ignore", SAWarning)
        metadata.reflect(bind=session.connection())
    clinic = metadata.tables["clinic"]
    belongs: dict[str, ColumnElement[bool]] = {"clinic": clinic.c.id.in_(clinic_ids)}
    for table in metadata.sorted_tables:  # parents before children
        if table.name in belongs:
            continue
        ways = [
            fk.parent.in_(select(fk.column).where(belongs[fk.column.table.name]))
            for fk in table.foreign_keys
            if fk.column.table.name in belongs
        ]
        if ways:
            belongs[table.name] = or_(*ways)
    for table in reversed(metadata.sorted_tables):  # children first
        condition = belongs.get(table.name)
        if condition is not None:
            session.execute(delete(table).where(condition))
    return len(clinic_ids)
