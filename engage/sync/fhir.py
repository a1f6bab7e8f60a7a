"""FHIR R4 sync: a ``Bundle`` (transaction or collection) of ``Patient`` and ``Appointment`` resources.

The Bundle is validated with the ``fhir.resources`` R4B models, then mapped to the same
records the CSV import makes and applied by :func:`engage.sync.apply.apply_sync`, so a
Bundle sent twice changes nothing. The mapping:

- **identifiers**: a resource's external id is its identifier of type ``MR`` (medical record
  number, as Synthea and most EHRs export it) when it has one, else its first identifier,
  else its logical ``id``;
- ``Patient.name`` (the ``official`` one, else the first): ``given[0]`` and ``family``;
  ``Patient.telecom``: the first ``phone`` (``mobile`` preferred) and ``email``;
  ``Patient.birthDate``: the date of birth (a year or a year and month alone is not kept);
  ``Patient.communication``: the preferred (else first) language, ``es-MX`` read as ``es``;
  a language engage has no templates for falls back to English;
- ``Appointment.status``: ``booked``/``pending``/``proposed``/``arrived``/``checked-in``/``waitlist``
  -> booked, ``cancelled``/``entered-in-error`` -> cancelled, ``noshow`` -> no_show,
  ``fulfilled`` -> completed; ``start`` and ``end`` (or ``minutesDuration``);
- ``Appointment.participant``: the actor referring to a ``Patient`` — by the ``fullUrl`` of an
  entry of the Bundle (``urn:uuid:...``), by ``Patient/<id>``, or by an identifier — is the patient;
  the actor referring to a ``Practitioner`` (an entry of the Bundle, ``Practitioner/<id>``, or an
  identifier) is who treats, matched by external id; a new one is added under the ``Practitioner``
  entry's name (or the reference's ``display``).

The answer is a ``transaction-response`` Bundle, one entry per entry given, in order.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fhir.resources.R4B.appointment import Appointment as FhirAppointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.practitioner import Practitioner as FhirPractitioner
from pydantic import ValidationError
from sqlalchemy.orm import Session

from engage.errors import InvalidInput
from engage.records.practitioners import find_by_external_id
from engage.records.validation import LOCALES
from engage.sync.apply import apply_sync
from engage.sync.records import AppointmentRecord, PatientRecord, SyncError, SyncErrors, SyncReport

SUPPORTED = ("Patient", "Appointment", "Practitioner")
BUNDLE_TYPES = ("transaction", "collection", "batch")
STATUS = {
    "booked": "booked",
    "pending": "booked",
    "proposed": "booked",
    "arrived": "booked",
    "checked-in": "booked",
    "waitlist": "booked",
    "cancelled": "cancelled",
    "entered-in-error": "cancelled",
    "noshow": "no_show",
    "fulfilled": "completed",
}


class FhirInvalid(InvalidInput):
    """The Bundle does not validate; ``errors`` maps a JSON pointer path (``entry/0/resource/start``) to why."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(f"the Bundle is not valid FHIR R4 ({len(errors)} problem(s))")
        self.errors = errors


def parse_bundle(data: Any) -> Bundle:
    """The validated Bundle; raises :class:`FhirInvalid` naming each bad path."""
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise FhirInvalid({"resourceType": "send a FHIR Bundle (resourceType: Bundle)"})
    problems: dict[str, str] = {}
    if data.get("type") not in BUNDLE_TYPES:
        problems["type"] = f"a Bundle of type {', '.join(BUNDLE_TYPES)}"
    for n, entry in enumerate(data.get("entry") or []):
        kind = (entry.get("resource") or {}).get("resourceType") if isinstance(entry, dict) else None
        if kind not in SUPPORTED:
            problems[f"entry/{n}/resource/resourceType"] = (
                f"engage takes Patient, Practitioner and Appointment, not {kind!r}"
            )
    if problems:
        raise FhirInvalid(problems)
    try:
        return Bundle.model_validate(data)
    except ValidationError as exc:
        raise FhirInvalid(
            {"/".join(str(p) for p in e["loc"]): e["msg"].removeprefix("Value error, ") for e in exc.errors()}
        ) from None


def sync_bundle(
    session: Session, clinic_id: int, data: Any, *, sequence: str | None = None, actor: str
) -> dict[str, Any]:
    """Apply a Bundle (see the module docstring); the transaction-response Bundle as JSON.

    ``sequence``: new plans (one per patient and sequence) are enrolled in it. Raises
    :class:`FhirInvalid` or :class:`~engage.sync.apply.SyncErrors` (``where``: ``entry/N``); nothing written.
    """
    bundle = parse_bundle(data)
    entries = list(bundle.entry or [])
    patients: list[PatientRecord] = []
    appointments: list[AppointmentRecord] = []
    refs: dict[str, str] = {}  # fullUrl or Patient/<id> -> external id
    clinicians: dict[str, tuple[str, str | None]] = {}  # fullUrl or Practitioner/<id> -> (external id, name)
    errors: list[SyncError] = []
    for n, entry in enumerate(entries):
        resource = entry.resource
        if isinstance(resource, FhirPractitioner):
            found = (_external_id(resource), _practitioner_name(resource))
            for key in (entry.fullUrl, f"Practitioner/{resource.id}" if resource.id else None):
                if key:
                    clinicians[str(key)] = found
        if isinstance(resource, FhirPatient):
            record = _patient(resource, f"entry/{n}")
            patients.append(record)
            for key in (entry.fullUrl, f"Patient/{resource.id}" if resource.id else None):
                if key:
                    refs[str(key)] = record.external_id
    for n, entry in enumerate(entries):
        if isinstance(entry.resource, FhirAppointment):
            appointment = _appointment(entry.resource, f"entry/{n}", refs, clinicians, sequence, errors)
            if appointment is not None:
                appointments.append(appointment)
    try:
        report = apply_sync(session, clinic_id, patients, appointments, actor=actor, errors=errors)
    except SyncErrors as exc:
        raise FhirInvalid(
            {
                f"{e.where}/resource/{_FHIR_PATH.get(e.field or '', e.field or '')}".rstrip("/"): e.message
                for e in exc.sync_errors
            }
        ) from None
    located = {
        f"entry/{n}": find_by_external_id(session, clinic_id, _external_id(entry.resource))
        for n, entry in enumerate(entries)
        if isinstance(entry.resource, FhirPractitioner)
    }
    return _response(entries, patients, appointments, report, located)


#: Where in a FHIR resource each record field comes from (for error pointers).
_FHIR_PATH = {
    "phone": "telecom",
    "email": "telecom",
    "first_name": "name",
    "last_name": "name",
    "locale": "communication",
    "timezone": "extension",
    "patient_external_id": "identifier",
    "appointment_external_id": "identifier",
    "duration": "end",
    "sequence": "participant",
    "practitioner_external_id": "participant",
}


def _external_id(resource: Any) -> str:
    identifiers = list(resource.identifier or [])
    for identifier in identifiers:
        codes = [c.code for c in (identifier.type.coding or [])] if identifier.type else []
        if "MR" in codes and identifier.value:
            return str(identifier.value)
    for identifier in identifiers:
        if identifier.value:
            return str(identifier.value)
    return str(resource.id or "")


def _patient(resource: FhirPatient, where: str) -> PatientRecord:
    names = list(resource.name or [])
    name = next((n for n in names if n.use == "official"), names[0] if names else None)
    telecom = list(resource.telecom or [])
    phones = [t for t in telecom if t.system == "phone" and t.value]
    phone = next((t for t in phones if t.use == "mobile"), phones[0] if phones else None)
    email = next((t for t in telecom if t.system == "email" and t.value), None)
    return PatientRecord(
        external_id=_external_id(resource),
        first_name=str((name.given or [""])[0]) if name else "",
        last_name=str(name.family or "") if name else "",
        phone=phone.value if phone else None,
        email=email.value if email else None,
        locale=_locale(resource),
        date_of_birth=_birth_date(resource),
        where=where,
    )


def _birth_date(resource: FhirPatient) -> str | date | None:
    """``birthDate`` when it is a whole date (FHIR allows ``1980`` or ``1980-03``, which say too little)."""
    born = resource.birthDate
    if born is None:
        return None
    if isinstance(born, date):
        return born
    text = str(born)
    return text if len(text) == 10 else None


def _locale(resource: FhirPatient) -> str:
    spoken = list(resource.communication or [])
    chosen = next((c for c in spoken if c.preferred), spoken[0] if spoken else None)
    codes = [c.code for c in (chosen.language.coding or [])] if chosen else []
    for code in codes:
        language = str(code or "").lower().replace("_", "-").split("-")[0]
        if language in LOCALES:
            return language
    return "en"


def _practitioner_name(resource: FhirPractitioner) -> str | None:
    for name in resource.name or []:
        if name.text:
            return str(name.text)
        words = [*(str(g) for g in name.given or []), str(name.family or "")]
        if any(words):
            return " ".join(w for w in words if w)
    return None


def _clinician(
    resource: FhirAppointment, clinicians: dict[str, tuple[str, str | None]]
) -> tuple[str | None, str | None]:
    """The (external id, name) of the participant who is a Practitioner, or (None, None)."""
    for participant in resource.participant or []:
        actor = participant.actor
        if actor is None:
            continue
        reference = str(actor.reference or "")
        if reference in clinicians:
            return clinicians[reference]
        if reference.startswith("Practitioner/") or actor.type == "Practitioner":
            ext = (
                str(actor.identifier.value)
                if actor.identifier and actor.identifier.value
                else reference.removeprefix("Practitioner/")
            )
            return (ext or None, str(actor.display) if actor.display else None)
    return None, None


def _appointment(
    resource: FhirAppointment,
    where: str,
    refs: dict[str, str],
    clinicians: dict[str, tuple[str, str | None]],
    sequence: str | None,
    errors: list[SyncError],
) -> AppointmentRecord | None:
    patient_id = None
    for participant in resource.participant or []:
        actor = participant.actor
        if actor is None:
            continue
        reference = str(actor.reference or "")
        if reference in refs:
            patient_id = refs[reference]
        elif reference.startswith("Patient/") or actor.type == "Patient":
            patient_id = (
                str(actor.identifier.value)
                if actor.identifier and actor.identifier.value
                else (reference.removeprefix("Patient/") or None)
            )
        if patient_id:
            break
    if not patient_id:
        errors.append(SyncError(where, "participant", "no participant refers to a Patient"))
        return None
    if resource.start is None:
        errors.append(SyncError(where, "start", "the appointment has no start"))
        return None
    if resource.end is not None:
        minutes = int((resource.end - resource.start).total_seconds() // 60)
    else:
        minutes = int(resource.minutesDuration or 45)
    practitioner = _clinician(resource, clinicians)
    status = STATUS.get(str(resource.status))
    if status is None:
        errors.append(SyncError(where, "status", f"unknown Appointment.status {resource.status!r}"))
        return None
    return AppointmentRecord(
        external_id=_external_id(resource),
        patient_external_id=patient_id,
        start=resource.start,
        minutes=minutes,
        status=status,
        sequence=sequence,
        practitioner_external_id=practitioner[0],
        practitioner_name=practitioner[1],
        where=where,
    )


def _response(
    entries: list[Any],
    patients: list[PatientRecord],
    appointments: list[AppointmentRecord],
    report: SyncReport,
    practitioners: dict[str, Any],
) -> dict[str, Any]:
    by_where: dict[str, tuple[str, str]] = {
        where: (f"Practitioner/{p.id}" if p is not None else "Practitioner", "200 OK")
        for where, p in practitioners.items()
    }
    for patient in patients:
        created = patient.external_id in report.created_patients
        by_where[patient.where] = (
            f"Patient/{report.patient_ids[patient.external_id]}",
            "201 Created" if created else "200 OK",
        )
    for appointment in appointments:
        outcome = report.appointment_outcomes[appointment.external_id]
        by_where[appointment.where] = (
            f"Appointment/{report.appointment_ids[appointment.external_id]}",
            "201 Created" if outcome == "created" else "200 OK",
        )
    answer = []
    for n in range(len(entries)):
        location, status = by_where[f"entry/{n}"]
        answer.append({"response": {"status": status, "location": location}})
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": answer}


__all__ = ["FhirInvalid", "SyncErrors", "parse_bundle", "sync_bundle"]
