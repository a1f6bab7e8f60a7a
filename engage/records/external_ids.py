"""External ids: the practice-management system's own ids for patients, plans and appointments.

Unique per clinic (the database enforces it too); a sync finds a record by its external
id and updates it instead of creating a second one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.errors import InvalidInput
from engage.records.models import Appointment, Patient, TreatmentPlan

MAX_LENGTH = 100


def _clinic_column(model: type[Any]) -> Any:
    return Patient.clinic_id if model is Patient else model.external_clinic_id


def normalise(external_id: str | None) -> str | None:
    """The id stripped; None for none. Raises ``InvalidInput`` (field ``external_id``) when too long."""
    if external_id is None:
        return None
    value = external_id.strip()
    if not value:
        return None
    if len(value) > MAX_LENGTH:
        raise InvalidInput(f"an external id has at most {MAX_LENGTH} characters", field="external_id")
    return value


def find(session: Session, model: type[Any], clinic_id: int, external_id: str) -> Any:
    """The patient, plan or appointment of ``clinic_id`` with that external id, or None."""
    return session.scalar(select(model).where(_clinic_column(model) == clinic_id, model.external_id == external_id))


def check_free(session: Session, model: type[Any], clinic_id: int, external_id: str | None) -> str | None:
    """The normalised id when no record of ``model`` in the clinic has it yet; else ``InvalidInput``."""
    value = normalise(external_id)
    if value is not None and find(session, model, clinic_id, value) is not None:
        kind = {Patient: "patient", TreatmentPlan: "plan", Appointment: "appointment"}[model]
        raise InvalidInput(f"another {kind} of this clinic already has external id {value!r}", field="external_id")
    return value
