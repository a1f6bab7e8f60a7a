"""``engage import appointments FILE.csv``: appointments (and their patients) from a practice-management export.

One row per appointment. Columns (a header row names them; order does not matter):

=========================  ========  ===================================================================
column                     required  meaning
=========================  ========  ===================================================================
patient_external_id        yes       the patient's id in your system
first_name, last_name      yes       the patient's names
phone, email               one       phone in any format (without ``+``: the clinic's country); email
locale                     no        ``en`` (default) or ``es``
date_of_birth              no        ``YYYY-MM-DD`` or ``MM/DD/YYYY``; tells two patients of one name apart
timezone                   no        IANA name; default: the clinic's
appointment_external_id    yes       the appointment's id in your system
start                      yes       ISO 8601; without an offset: the patient's local wall time
duration                   no        minutes (``45``) or ``45m``/``1h``; default 45
status                     no        ``booked`` (default), ``cancelled``, ``completed``, ``no_show``
sequence                   no        enroll the patient's plan for it, e.g. ``dry-needling-sciatica``
plan_external_id           no        the plan's id in your system (default: one plan per patient and sequence)
condition, modality        no        for plans the import makes (default: the sequence's name, empty)
practitioner_external_id   no        who sees the patient, by your system's id
practitioner_name          no        their name: adds a practitioner whose id engage does not know yet
=========================  ========  ===================================================================

Every row is checked before anything is written; :class:`~engage.sync.apply.SyncErrors` lists each
bad row (``line N``) and why, up to :data:`~engage.sync.records.MAX_ERRORS` errors, where checking stops.
A patient appearing on several rows must have the same details on each.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy.orm import Session

from engage.errors import InvalidInput
from engage.schedule.durations import parse_duration
from engage.sync.apply import apply_sync
from engage.sync.records import AppointmentRecord, PatientRecord, SyncError, SyncErrors, SyncReport, enough

REQUIRED = ("patient_external_id", "first_name", "last_name", "appointment_external_id", "start")
OPTIONAL = (
    "phone",
    "email",
    "locale",
    "timezone",
    "date_of_birth",
    "duration",
    "status",
    "sequence",
    "plan_external_id",
    "condition",
    "modality",
    "practitioner_external_id",
    "practitioner_name",
)
_STATUS_WORDS = {"canceled": "cancelled", "no-show": "no_show", "noshow": "no_show", "fulfilled": "completed"}


def read_rows(text: str) -> tuple[list[PatientRecord], list[AppointmentRecord], list[SyncError]]:
    """The records in a CSV text and the rows that could not be read; :class:`SyncErrors` for a bad header
    or a text that is not CSV."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))  # Excel writes a byte-order mark
    try:
        return _read(reader)
    except csv.Error as exc:  # e.g. an unclosed quote that runs on past the field size limit
        # DictReader.line_num is the last line of the last record read: the bad one starts on the next.
        raise SyncErrors([SyncError(f"line {reader.line_num + 1}", None, f"not readable as CSV: {exc}")]) from exc


def _read(reader: csv.DictReader[str]) -> tuple[list[PatientRecord], list[AppointmentRecord], list[SyncError]]:
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in REQUIRED if name not in header]
    unknown = [name for name in header if name not in REQUIRED + OPTIONAL]
    if missing or unknown:
        problems = ([f"missing column(s): {', '.join(missing)}"] if missing else []) + (
            [f"unknown column(s): {', '.join(unknown)}"] if unknown else []
        )
        raise SyncErrors([SyncError("line 1", None, "; ".join(problems))])
    patients: list[PatientRecord] = []
    appointments: list[AppointmentRecord] = []
    errors: list[SyncError] = []
    for number, raw in enumerate(reader, start=2):
        if enough(errors):
            break  # the rest is not read: a file of bad rows is answered at once
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        where = f"line {number}"
        if None in raw:
            errors.append(SyncError(where, None, "more values than columns"))
            continue
        # Only this row's errors are counted: scanning every error so far made a file of bad rows quadratic.
        found = len(errors)
        for name in REQUIRED:
            if not row.get(name):
                errors.append(SyncError(where, name, f"{name} is empty"))
        minutes = _minutes(row.get("duration", ""), where, errors)
        if len(errors) > found:
            continue
        patients.append(
            PatientRecord(
                external_id=row["patient_external_id"],
                first_name=row["first_name"],
                last_name=row["last_name"],
                email=row.get("email") or None,
                phone=row.get("phone") or None,
                timezone=row.get("timezone") or None,
                locale=row.get("locale") or "en",
                date_of_birth=row.get("date_of_birth") or None,
                where=where,
            )
        )
        status = row.get("status", "").lower() or "booked"
        appointments.append(
            AppointmentRecord(
                external_id=row["appointment_external_id"],
                patient_external_id=row["patient_external_id"],
                start=row["start"],
                minutes=minutes,
                status=_STATUS_WORDS.get(status, status),
                sequence=row.get("sequence") or None,
                plan_external_id=row.get("plan_external_id") or None,
                condition=row.get("condition") or None,
                modality=row.get("modality") or None,
                practitioner_external_id=row.get("practitioner_external_id") or None,
                practitioner_name=row.get("practitioner_name") or None,
                where=where,
            )
        )
    return patients, appointments, errors


class BadFile(InvalidInput):
    """The bytes are not a CSV file the import can read (empty, too large, binary, not UTF-8)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="file")


def read_file(data: bytes, max_bytes: int | None = None) -> str:
    """The text of a CSV file as every way in reads it (UTF-8, a byte-order mark dropped, any line ends).

    Raises :class:`BadFile` for an empty file, one over ``max_bytes``, binary data or text that is not UTF-8.
    """
    if not data:
        raise BadFile("The file is empty: choose the CSV export.")
    if max_bytes is not None and len(data) > max_bytes:
        raise BadFile(
            f"The file is larger than {megabytes(max_bytes)}: import it in parts "
            "(rows already imported are left as they are)."
        )
    if b"\x00" in data:
        raise BadFile(
            "This is not a CSV file (it holds binary data, as a spreadsheet workbook does). "
            "Export or save the appointments as CSV."
        )
    try:
        return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig").read()
    except UnicodeDecodeError:
        raise BadFile('The file is not UTF-8 text. In your spreadsheet, save it as "CSV UTF-8".') from None


def megabytes(size: int) -> str:
    """A byte count as people read a file size: ``5.0 MB``."""
    return f"{size / 1_000_000:.1f} MB"


def import_appointments(
    session: Session,
    clinic_id: int,
    text: str,
    *,
    actor: str,
    dry_run: bool = False,
) -> SyncReport:
    """Read and apply a CSV text (see the module docstring) in the caller's transaction; returns what it did.

    ``dry_run``: everything is checked and counted in a savepoint that is then rolled back, so nothing
    is written and the caller's transaction goes on. Raises :class:`SyncErrors` (nothing written).
    """
    patients, appointments, errors = read_rows(text)
    if not appointments and not errors:
        raise SyncErrors([SyncError("line 2", None, "the file has no rows")])
    if not dry_run:
        return apply_sync(session, clinic_id, patients, appointments, actor=actor, errors=errors)
    savepoint = session.begin_nested()
    try:
        return apply_sync(session, clinic_id, patients, appointments, actor=actor, errors=errors)
    finally:
        savepoint.rollback()


def _minutes(text: str, where: str, errors: list[SyncError]) -> int:
    if not text:
        return 45
    if text.isascii() and text.isdigit():  # str.isdigit() is also true of "²", which int() refuses
        return int(text)
    try:
        return int(parse_duration(text).total_seconds() // 60)
    except ValueError:
        errors.append(SyncError(where, "duration", f"not a duration: {text!r} (write minutes, e.g. 45, or 1h)"))
        return 0


def error_lines(exc: InvalidInput) -> list[dict[str, Any]]:
    """Each error of a failed import as a dict (``where``, ``field``, ``message``)."""
    errors = getattr(exc, "sync_errors", None)
    return [e.as_dict() for e in errors] if errors else [{"where": None, "field": None, "message": str(exc)}]
