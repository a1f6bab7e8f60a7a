"""What a sync brings in, checked: patient and appointment records, the errors, the report.

:func:`validate_patients` and :func:`validate_appointments` check every record before
:func:`engage.sync.apply.apply_sync` writes anything, and collect one :class:`SyncError` per
bad record and field (``where``: a CSV line, a Bundle entry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.errors import InvalidInput
from engage.records import external_ids, validation
from engage.records.models import Appointment, AppointmentStatus, Clinic, Patient
from engage.records.patients import FieldErrors, validated_fields
from engage.schedule import appointments as appointment_changes
from engage.schedule.catalogue import require_known
from engage.schedule.reconcile import ReconcileResult

_CHUNK = 1000
#: Errors collected before a sync stops checking: a file of bad rows is answered at once, not listed in full.
MAX_ERRORS = 100
PATIENT_FIELDS = ("first_name", "last_name", "email", "phone", "timezone", "locale", "date_of_birth")


@dataclass
class PatientRecord:
    """A patient as the clinic's system has them. ``where`` says where it came from (for errors)."""

    external_id: str
    first_name: str
    last_name: str
    email: str | None = None
    phone: str | None = None
    timezone: str | None = None
    locale: str = "en"
    #: ``YYYY-MM-DD`` (or ``MM/DD/YYYY``, or a date); None: not given, a known patient's date is kept.
    date_of_birth: str | date | None = None
    where: str = ""


@dataclass
class AppointmentRecord:
    """An appointment as the clinic's system has it. ``start`` without an offset is the patient's wall time."""

    external_id: str
    patient_external_id: str
    start: str | datetime
    minutes: int = 45
    status: str = "booked"
    sequence: str | None = None
    plan_external_id: str | None = None
    condition: str | None = None
    modality: str | None = None
    #: Who treats, by the practice-management system's id; a new id needs ``practitioner_name``.
    practitioner_external_id: str | None = None
    practitioner_name: str | None = None
    where: str = ""


@dataclass
class SyncError:
    where: str
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"where": self.where, "field": self.field, "message": self.message}


def enough(errors: list[SyncError]) -> bool:
    """Whether ``errors`` holds :data:`MAX_ERRORS`: the checks stop there."""
    return len(errors) >= MAX_ERRORS


class SyncErrors(InvalidInput):
    """Some records are invalid; ``errors`` lists each one (up to :data:`MAX_ERRORS`, then a line saying the
    checks stopped). Nothing was written."""

    def __init__(self, errors: list[SyncError]) -> None:
        if len(errors) >= MAX_ERRORS:
            errors = [
                *errors[:MAX_ERRORS],
                SyncError(
                    f"after {errors[MAX_ERRORS - 1].where}",
                    None,
                    f"checking stopped after {MAX_ERRORS} errors: correct these and import the file again",
                ),
            ]
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first.where}: {first.message}{more}")
        self.sync_errors = errors


@dataclass
class SyncReport:
    """What a sync did (or, dry run, would do), counted per kind of record."""

    patients_created: int = 0
    patients_updated: int = 0
    patients_unchanged: int = 0
    plans_created: int = 0
    appointments_created: int = 0
    appointments_moved: int = 0
    appointments_status_changed: int = 0
    appointments_unchanged: int = 0
    enrollments_created: int = 0
    messages: ReconcileResult = field(default_factory=ReconcileResult)
    patient_ids: dict[str, int] = field(default_factory=dict)  # external id -> engage id
    appointment_ids: dict[str, int] = field(default_factory=dict)
    appointment_outcomes: dict[str, str] = field(default_factory=dict)  # external id -> created/updated/unchanged
    created_patients: set[str] = field(default_factory=set)  # external ids

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if isinstance(v, int | bool)}
        return {**data, "messages": self.messages.as_dict()}


@dataclass
class CheckedAppointment:
    record: AppointmentRecord
    start: datetime
    end: datetime
    status: AppointmentStatus
    existing: Appointment | None
    timezone: str  # the patient's, in which ``start`` was read


def validate_patients(
    session: Session,
    clinic: Clinic,
    records: list[PatientRecord],
    known: dict[str, Patient],
    errors: list[SyncError],
) -> dict[str, tuple[PatientRecord, dict[str, Any]]]:
    """The patients that pass every check, by external id; an error for each failed check.

    ``known`` (the clinic's patients by external id) is filled here, a chunk of records at a time as the
    checks reach them: a sync that stops at :data:`MAX_ERRORS` does not look up the rest.
    """
    found: dict[str, tuple[PatientRecord, dict[str, Any]]] = {}
    emails: dict[str, str] = {}
    for index, record in enumerate(records):
        if enough(errors):
            break
        if index % _CHUNK == 0:
            chunk = {r.external_id.strip() for r in records[index : index + _CHUNK]}
            known.update(by_external_id(session, Patient, Patient.clinic_id, clinic.id, chunk))
        ext = _external_id(record.external_id, record.where, "patient_external_id", errors)
        if ext is None:
            continue
        record.external_id = ext
        earlier = found.get(ext)
        if earlier is not None:
            if any(getattr(earlier[0], n) != getattr(record, n) for n in PATIENT_FIELDS):
                errors.append(
                    SyncError(
                        record.where,
                        "patient_external_id",
                        f"patient {ext} appears with other details at {earlier[0].where}",
                    )
                )
            continue
        current = known.get(ext)
        try:
            values = validated_fields(
                session,
                clinic,
                first_name=record.first_name,
                last_name=record.last_name,
                email=record.email,
                phone=record.phone,
                timezone=record.timezone,
                locale=record.locale or "en",
                patient_id=current.id if current else None,
                date_of_birth=record.date_of_birth
                if record.date_of_birth is not None
                else (current.date_of_birth if current else None),
            )
        except FieldErrors as exc:
            errors.extend(SyncError(record.where, name, text) for name, text in exc.errors.items())
            continue
        if values.get("email"):
            other = emails.setdefault(values["email"], ext)
            if other != ext:
                errors.append(SyncError(record.where, "email", f"patient {other} in this file has the same email"))
                continue
        found[ext] = (record, values)
    return found


def validate_appointments(
    session: Session,
    clinic: Clinic,
    records: list[AppointmentRecord],
    patients: dict[str, tuple[PatientRecord, dict[str, Any]]],
    known: dict[str, Patient],
    invalid: set[str],
    errors: list[SyncError],
) -> list[CheckedAppointment]:
    """The appointments that pass every check; an error for each failed check (``invalid``: patients of this
    sync already reported bad, whose appointments are still checked, in the clinic's time zone)."""
    existing: dict[str, Appointment] = {}  # looked up a chunk at a time: checks that stop early look up no more
    seen: dict[str, str] = {}
    sequences: dict[str, str | None] = {}
    valid: list[CheckedAppointment] = []
    for index, record in enumerate(records):
        if enough(errors):
            break
        if index % _CHUNK == 0:
            chunk = {r.external_id.strip() for r in records[index : index + _CHUNK]}
            existing.update(by_external_id(session, Appointment, Appointment.external_clinic_id, clinic.id, chunk))
        before = len(errors)
        ext = _external_id(record.external_id, record.where, "appointment_external_id", errors)
        patient_ext = record.patient_external_id.strip()
        if ext is not None and ext in seen:
            errors.append(
                SyncError(record.where, "appointment_external_id", f"appointment {ext} is also at {seen[ext]}")
            )
        if ext is not None:
            seen.setdefault(ext, record.where)
        if patient_ext in patients:
            tz = patients[patient_ext][1]["timezone"] or clinic.timezone
        elif patient_ext in known:
            tz = known[patient_ext].effective_timezone
        elif patient_ext in invalid:
            tz = clinic.timezone
        else:
            errors.append(
                SyncError(record.where, "patient_external_id", f"no patient with external id {patient_ext!r}")
            )
            continue
        start = _check(validation.local_datetime, (record.start, tz), record.where, "start", errors)
        if not 1 <= record.minutes <= 24 * 60:
            errors.append(SyncError(record.where, "duration", "a duration is 1 minute to 24 hours"))
        try:
            status = AppointmentStatus(record.status)
        except ValueError:
            words = ", ".join(s.value for s in AppointmentStatus)
            errors.append(SyncError(record.where, "status", f"unknown status {record.status!r}: one of {words}"))
            continue
        if record.sequence and record.sequence not in sequences:
            sequences[record.sequence] = _sequence_problem(session, clinic.id, record.sequence)
        if record.sequence and sequences[record.sequence]:
            errors.append(SyncError(record.where, "sequence", str(sequences[record.sequence])))
        current = existing.get(ext or "")
        if current is not None and not appointment_changes.may_become(current.status, status):
            errors.append(
                SyncError(
                    record.where,
                    "status",
                    f"appointment {ext} is {current.status.value} in engage; it cannot become {status.value}",
                )
            )
        if (
            current is not None
            and current.status is not AppointmentStatus.BOOKED
            and start is not None
            and (start != current.start_at or record.minutes != _minutes(current))
            and status is current.status
        ):
            errors.append(
                SyncError(
                    record.where, "start", f"appointment {ext} is {current.status.value}; only booked appointments move"
                )
            )
        if len(errors) == before and start is not None and ext is not None and patient_ext not in invalid:
            record.external_id, record.patient_external_id = ext, patient_ext
            valid.append(
                CheckedAppointment(record, start, start + timedelta(minutes=record.minutes), status, current, tz)
            )
    return valid


def _external_id(value: str, where: str, name: str, errors: list[SyncError]) -> str | None:
    try:
        ext = external_ids.normalise(value)
    except InvalidInput as exc:
        errors.append(SyncError(where, name, str(exc)))
        return None
    if ext is None:
        errors.append(SyncError(where, name, "the external id is missing"))
    return ext


def _check(check: Any, args: tuple[Any, ...], where: str, name: str, errors: list[SyncError]) -> Any:
    try:
        return check(*args)
    except InvalidInput as exc:
        errors.append(SyncError(where, name, str(exc)))
        return None


def _sequence_problem(session: Session, clinic_id: int, key: str) -> str | None:
    try:
        require_known(session, clinic_id, key)
    except (InvalidInput, LookupError) as exc:
        return str(exc)
    return None


def _minutes(appointment: Appointment) -> int:
    return int((appointment.end_at - appointment.start_at).total_seconds() // 60)


def by_external_id(
    session: Session, model: type[Any], clinic_column: Any, clinic_id: int, ids: set[str]
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    items = sorted(i for i in ids if i)
    for start in range(0, len(items), _CHUNK):
        rows = session.scalars(
            select(model).where(clinic_column == clinic_id, model.external_id.in_(items[start : start + _CHUNK]))
        )
        found.update({row.external_id: row for row in rows})
    return found
