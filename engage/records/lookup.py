"""Load one record by id, or say plainly which one is missing."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engage.errors import NotFound


def get(session: Session, model: type[Any], record_id: int) -> Any:
    """The record, or ``NotFound`` naming its kind and id."""
    record = session.get(model, record_id)
    if record is None:
        raise NotFound(f"no {model.__tablename__.replace('_', ' ')} with id {record_id}")
    return record


def clinic_of(session: Session, record: Any) -> int:
    """The clinic a patient, plan, appointment or enrollment belongs to."""
    from engage.records.models import Appointment, Enrollment, Patient, TreatmentPlan

    if isinstance(record, Patient):
        return record.clinic_id
    if isinstance(record, TreatmentPlan | Enrollment):
        return record.patient.clinic_id
    if isinstance(record, Appointment):
        return record.plan.patient.clinic_id
    raise TypeError(f"{type(record).__name__} has no clinic")


def get_in_clinic(session: Session, model: type[Any], record_id: int, clinic_id: int) -> Any:
    """The record when it belongs to ``clinic_id``; otherwise ``NotFound``, exactly as if it did not exist
    (staff of one clinic learn nothing about another's ids)."""
    record = session.get(model, record_id)
    if record is None or clinic_of(session, record) != clinic_id:
        raise NotFound(f"no {model.__tablename__.replace('_', ' ')} with id {record_id}")
    return record
