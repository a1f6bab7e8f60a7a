"""Patients: add one, validated (E.164 phone, IANA time zone, locale, unique email per clinic)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.config import get_settings
from engage.errors import InvalidInput
from engage.records import external_ids, validation
from engage.records.audit import AuditAction, audit
from engage.records.limits import TooLong, max_length
from engage.records.lookup import get
from engage.records.models import Clinic, Patient
from engage.records.plans import appointment_json


@dataclass(frozen=True)
class PatientAdded:
    """A new patient, and warnings for staff (sentences; the patient was added anyway)."""

    patient: Patient
    warnings: list[str]


def add_patient(
    session: Session,
    *,
    clinic_id: int,
    first_name: str,
    last_name: str,
    actor: str,
    email: str | None = None,
    phone: str | None = None,
    timezone: str | None = None,
    locale: str = "en",
    external_id: str | None = None,
    date_of_birth: str | date | None = None,
) -> PatientAdded:
    """A new patient of ``clinic_id``. Raises ``InvalidInput`` (see :func:`validated_fields`) before writing.

    ``external_id``: the clinic's own id for the patient (unique per clinic). A phone number another
    patient of the clinic has is allowed (families share phones) but warned about: an SMS reply from it
    is matched to one of them only.
    """
    clinic: Clinic = get(session, Clinic, clinic_id)
    fields = validated_fields(
        session,
        clinic,
        first_name=first_name,
        last_name=last_name,
        email=email,
        phone=phone,
        timezone=timezone,
        locale=locale,
        date_of_birth=date_of_birth,
    )
    external_id = external_ids.check_free(session, Patient, clinic.id, external_id)
    patient = Patient(clinic_id=clinic.id, external_id=external_id, **fields)
    session.add(patient)
    session.flush()
    audit(
        session,
        clinic_id=clinic.id,
        actor=actor,
        action=AuditAction.PATIENT_CREATE,
        subject_type="patient",
        subject_id=patient.id,
    )
    return PatientAdded(patient, phone_warnings(session, patient))


def phone_warnings(session: Session, patient: Patient) -> list[str]:
    """A warning when other patients of the clinic share this patient's phone number (none: no warning)."""
    if not patient.phone:
        return []
    others = session.scalars(
        select(Patient.id)
        .where(Patient.clinic_id == patient.clinic_id, Patient.phone == patient.phone, Patient.id != patient.id)
        .order_by(Patient.id)
    ).all()
    if not others:
        return []
    ids = ", ".join(str(i) for i in others)
    return [
        f"patient {ids} of this clinic has the same phone number; SMS replies from it reach only one of them"
        if len(others) == 1
        else f"patients {ids} of this clinic have the same phone number; SMS replies from it reach only one of them"
    ]


class FieldErrors(InvalidInput):
    """Several fields are wrong at once; ``errors`` maps each field name to its sentence."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def validated_fields(
    session: Session,
    clinic: Clinic,
    *,
    first_name: str,
    last_name: str,
    email: str | None,
    phone: str | None,
    timezone: str | None,
    locale: str,
    patient_id: int | None = None,
    date_of_birth: str | date | None = None,
) -> dict[str, Any]:
    """The patient's fields, normalised (E.164 phone, lower-case email, IANA zone, locale, date of birth).

    Raises ``FieldErrors`` naming every wrong field (an ``InvalidInput``), so a form
    can show each error beside its field. ``patient_id`` is the patient being edited
    (their own email is not a duplicate).
    """
    errors: dict[str, str] = {}
    values: dict[str, Any] = {"first_name": first_name.strip(), "last_name": last_name.strip()}
    if not values["first_name"]:
        errors["first_name"] = "the patient needs a first name"
    if not values["last_name"]:
        errors["last_name"] = "the patient needs a last name"
    email, phone, timezone = (email or "").strip() or None, (phone or "").strip() or None, (timezone or "").strip()
    checks = (
        ("email", lambda: validation.email_address(email) if email else None),
        (
            "phone",
            lambda: validation.phone_e164(phone, clinic.region or get_settings().default_region) if phone else None,
        ),
        ("timezone", lambda: validation.timezone_name(timezone) if timezone else None),
        ("locale", lambda: validation.locale(locale or "en")),
        ("date_of_birth", lambda: _birth_date(date_of_birth)),
    )
    for name, check in checks:
        try:
            values[name] = check()
        except InvalidInput as exc:
            errors[name] = str(exc)
    if not email and not phone:
        errors.setdefault("email", "the patient needs an email address or a phone number (or both)")
    if values.get("email") and "email" not in errors:
        taken = select(Patient.id).where(Patient.clinic_id == clinic.id, Patient.email == values["email"])
        if patient_id is not None:
            taken = taken.where(Patient.id != patient_id)
        if session.scalar(taken):
            errors["email"] = "another patient of this clinic already has that email address"
    for name, value in values.items():
        limit = max_length(Patient, name)
        if isinstance(value, str) and limit is not None and len(value) > limit and name not in errors:
            errors[name] = str(TooLong(Patient, name, limit, len(value)))
    if errors:
        raise FieldErrors(errors)
    return values


def _birth_date(value: str | date | None) -> date | None:
    """A date of birth: a date, ``YYYY-MM-DD`` or the US ``MM/DD/YYYY``; not in the future, not before 1900."""
    if value is None or isinstance(value, date):
        born = value
    elif not value.strip():
        return None
    else:
        born = None
        for pattern in ("%Y-%m-%d", "%m/%d/%Y"):
            try:
                born = datetime.strptime(value.strip(), pattern).date()
                break
            except ValueError:
                continue
        if born is None:
            raise InvalidInput(f"{value.strip()!r} is not a date: write it as YYYY-MM-DD or MM/DD/YYYY")
    if born is not None and not date(1900, 1, 1) <= born <= utcnow().date():
        raise InvalidInput("a date of birth is between 1900 and today")
    return born


#: The fields staff may change with :func:`update_patient`.
EDITABLE = ("first_name", "last_name", "email", "phone", "timezone", "locale", "date_of_birth")


def update_patient(session: Session, patient: Patient, *, actor: str, **given: str | date | None) -> list[str]:
    """Change the given fields (names in :data:`EDITABLE`; others keep their values), validated as on add.

    Returns the names of the fields that changed. Raises ``FieldErrors`` before writing.
    A changed phone number is trusted again (``phone_invalid`` cleared).
    """
    unknown = set(given) - set(EDITABLE)
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(sorted(unknown))}")
    current = {name: getattr(patient, name) for name in EDITABLE}
    merged = {name: (given[name] if name in given else current[name]) for name in EDITABLE}
    fields = validated_fields(
        session,
        patient.clinic,
        first_name=str(merged["first_name"] or ""),
        last_name=str(merged["last_name"] or ""),
        email=_text(merged["email"]),
        phone=_text(merged["phone"]),
        timezone=_text(merged["timezone"]),
        locale=str(merged["locale"] or "en"),
        patient_id=patient.id,
        date_of_birth=merged["date_of_birth"],
    )
    changed = [name for name in EDITABLE if fields[name] != current[name]]
    for name in changed:
        setattr(patient, name, fields[name])
    if "phone" in changed:
        patient.phone_invalid = False
    if changed:
        session.flush()
        audit(
            session,
            clinic_id=patient.clinic_id,
            actor=actor,
            action=AuditAction.PATIENT_UPDATE,
            subject_type="patient",
            subject_id=patient.id,
            fields=changed,
        )
    return changed


def _text(value: str | date | None) -> str | None:
    return None if value is None else str(value)


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
        "date_of_birth": patient.date_of_birth.isoformat() if patient.date_of_birth else None,
        "external_id": patient.external_id,
        "plans": [
            {
                "id": plan.id,
                "condition": plan.condition,
                "modality": plan.modality,
                "planned_sessions": plan.planned_sessions,
                "status": plan.status.value,
                "external_id": plan.external_id,
                "appointments": [appointment_json(a) for a in plan.appointments],
            }
            for plan in patient.plans
        ],
    }
