"""Patients: add one, validated (E.164 phone, IANA time zone, locale, unique email per clinic)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.config import get_settings
from engage.errors import InvalidInput
from engage.records import validation
from engage.records.audit import audit
from engage.records.lookup import get
from engage.records.models import Clinic, Patient
from engage.records.plans import appointment_json


def add_patient(
    session: Session,
    *,
    clinic_id: int,
    first_name: str,
    last_name: str,
    email: str | None = None,
    phone: str | None = None,
    timezone: str | None = None,
    locale: str = "en",
    actor: str = "cli",
) -> Patient:
    clinic: Clinic = get(session, Clinic, clinic_id)
    if not first_name.strip() or not last_name.strip():
        raise InvalidInput("the patient needs a first and a last name")
    if not email and not phone:
        raise InvalidInput("the patient needs an email address or a phone number (or both)")
    email_norm = validation.email_address(email) if email else None
    if email_norm and session.scalar(
        select(Patient.id).where(Patient.clinic_id == clinic.id, Patient.email == email_norm)
    ):
        raise InvalidInput("another patient of this clinic already has that email address")
    patient = Patient(
        clinic_id=clinic.id,
        first_name=first_name.strip(),
        last_name=last_name.strip(),
        email=email_norm,
        phone=validation.phone_e164(phone, clinic.region or get_settings().default_region) if phone else None,
        timezone=validation.timezone_name(timezone) if timezone else None,
        locale=validation.locale(locale),
    )
    session.add(patient)
    session.flush()
    audit(
        session, clinic_id=clinic.id, actor=actor, action="patient.create", subject_type="patient",
        subject_id=patient.id,
    )
    return patient


def patient_json(patient: Patient) -> dict[str, Any]:
    """The patient with plans and appointments (for staff: includes contact details)."""
    return {
        "id": patient.id,
        "clinic_id": patient.clinic_id,
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "email": patient.email,
        "phone": patient.phone,
        "timezone": patient.effective_timezone,
        "locale": patient.locale,
        "plans": [
            {
                "id": plan.id,
                "condition": plan.condition,
                "modality": plan.modality,
                "planned_sessions": plan.planned_sessions,
                "status": plan.status.value,
                "appointments": [appointment_json(a) for a in plan.appointments],
            }
            for plan in patient.plans
        ],
    }
