"""Apply what the practice-management system says to engage's records, by the clinic's own ids.

CSV rows, FHIR resources and the API's ``PUT .../by-external-id/...`` all become
:class:`PatientRecord` and :class:`AppointmentRecord` values and go through
:func:`apply_sync`, so the three behave alike:

- every record is validated first; any error raises :class:`SyncErrors` listing each
  bad record (its ``where``: a CSV line, a Bundle entry) and why, before anything is written;
- a patient or appointment whose external id is new is created; one that exists is
  updated only where it differs, so applying the same data twice changes nothing;
- a changed start or length moves the appointment (its reminders move), a status of
  ``cancelled`` cancels it (its reminders are cancelled), ``completed``/``no_show`` mark it;
  ``booked`` for a cancelled or no-show visit books it again (at its new time, if it has one),
  a change like a move that re-plans its messages;
- a start in the past is history the practice-management system recorded: it is written
  (as the CLI's ``--allow-past`` does) and gets no booking confirmation, and its reminders,
  due before now, are skipped; follow-ups after it that are still ahead are planned as usual;
- two booked visits of one patient that would overlap once the sync is applied (in the sync,
  or one in the sync and one already in engage) are an error at the sync's record, naming
  the other visit (:mod:`engage.sync.overlaps`);
- an appointment goes into the plan named by ``plan_external_id``; without one, into the
  patient's plan for ``sequence`` (external id ``<patient id>/<sequence>``), made when
  missing and enrolled in that sequence; without either, into the patient's newest active plan, or, for a
  patient with none, into their plan for the clinic's default sequence (``clinic.default_sequence``).

New rows are written in bulk (a handful of statements for thousands); changed rows go
through the same library functions as the CLI (``move_appointment``, ``update_patient``).
Everything happens in the caller's transaction: a dry run is a sync rolled back.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.records.audit import AuditAction, audit
from engage.records.lookup import get
from engage.records.models import (
    Appointment,
    AppointmentStatus,
    Clinic,
    Enrollment,
    Patient,
    PlanStatus,
    Practitioner,
    TreatmentPlan,
)
from engage.records.practitioners import match_external
from engage.schedule import appointments as appointment_changes
from engage.schedule import patient_changes
from engage.schedule.catalogue import sequence_names
from engage.schedule.enrollments import enroll_many
from engage.schedule.reconcile import PLANNING_ACTIVE, reconcile_plan
from engage.sync.overlaps import refuse_overlaps
from engage.sync.records import (
    PATIENT_FIELDS,
    AppointmentRecord,
    CheckedAppointment,
    PatientRecord,
    SyncError,
    SyncErrors,
    SyncReport,
    by_external_id,
    enough,
    validate_appointments,
    validate_patients,
)

_CHUNK = 1000
__all__ = ["AppointmentRecord", "PatientRecord", "SyncError", "SyncErrors", "SyncReport", "apply_sync"]


def apply_sync(
    session: Session,
    clinic_id: int,
    patients: list[PatientRecord],
    appointments: list[AppointmentRecord],
    *,
    actor: str,
    errors: list[SyncError] | None = None,
) -> SyncReport:
    """Validate everything, then create or update (see the module docstring). Raises :class:`SyncErrors`.

    ``errors``: problems the caller already found while reading its input (reported with the rest).
    """
    clinic: Clinic = get(session, Clinic, clinic_id)
    errors = list(errors or [])
    patient_ids = {p.external_id.strip() for p in patients}
    wanted_ids = patient_ids | {a.patient_external_id.strip() for a in appointments}
    # The checks stop at MAX_ERRORS and the errors then reported are fixed: a sync of many bad records stops
    # there, before looking up the rest (every id of a 5 MB CSV took seconds), as it writes nothing anyway.
    known: dict[str, Patient] = {}  # filled by validate_patients for the patients it reaches
    validated = validate_patients(session, clinic, patients, known, errors)
    if enough(errors):
        raise SyncErrors(errors)
    known.update(by_external_id(session, Patient, Patient.clinic_id, clinic.id, wanted_ids - patient_ids))
    invalid = {p.external_id.strip() for p in patients} - set(validated)
    appts = validate_appointments(session, clinic, appointments, validated, known, invalid, errors)
    if enough(errors):
        raise SyncErrors(errors)
    refuse_overlaps(session, appts, known, errors)
    practitioners = _practitioners(session, clinic.id, appts, errors)
    if errors:
        raise SyncErrors(errors)

    report = SyncReport()
    now = utcnow()
    new_patients: list[tuple[PatientRecord, dict[str, Any]]] = []
    for ext, (record, values) in validated.items():
        current = known.get(ext)
        if current is None:
            new_patients.append((record, values))
        elif all(getattr(current, name) == values[name] for name in PATIENT_FIELDS):
            report.patients_unchanged += 1
        else:
            report.patients_updated += 1
            given = {name: getattr(record, name) for name in PATIENT_FIELDS}
            given["date_of_birth"] = values["date_of_birth"]  # not given: the known date, kept
            report.messages += patient_changes.update_patient(session, current, actor=actor, **given)[1]
    if new_patients:
        rows = [
            {**values, "clinic_id": clinic.id, "external_id": record.external_id, "created_at": now}
            for record, values in new_patients
        ]
        ids = session.scalars(insert(Patient).returning(Patient.id, sort_by_parameter_order=True), rows).all()
        for start in range(0, len(ids), _CHUNK):  # loaded in a few statements, not one per patient
            for patient in session.scalars(select(Patient).where(Patient.id.in_(ids[start : start + _CHUNK]))):
                known[patient.external_id or ""] = patient
                report.created_patients.add(patient.external_id or "")
        report.patients_created = len(ids)

    _write_appointments(session, clinic, appts, known, report, actor, now, practitioners)
    report.patient_ids = {ext: p.id for ext, p in known.items() if ext in wanted_ids}
    audit(
        session,
        clinic_id=clinic.id,
        actor=actor,
        action=AuditAction.SYNC_APPLY,
        subject_type="clinic",
        subject_id=clinic.id,
        **{k: v for k, v in report.as_dict().items() if k != "messages"},
    )
    return report


def _write_appointments(
    session: Session,
    clinic: Clinic,
    appts: list[CheckedAppointment],
    patients: dict[str, Patient],
    report: SyncReport,
    actor: str,
    now: datetime,
    practitioners: dict[str, int],
) -> None:
    plans, plan_info = _plans_for(session, clinic, appts, patients, report, now, practitioners)
    new_rows: list[dict[str, Any]] = []
    new_keys: list[str] = []
    touched_plans: set[int] = set()
    for appt in appts:
        current = appt.existing
        if current is None:
            plan_id = plans[appt.record.external_id]
            new_rows.append(
                {
                    "plan_id": plan_id,
                    "start_at": appt.start,
                    "end_at": appt.end,
                    "status": appt.status,
                    "external_id": appt.record.external_id,
                    "external_clinic_id": clinic.id,
                    "updated_at": now,
                    "practitioner_id": _practitioner_of(appt.record, practitioners),
                }
            )
            new_keys.append(appt.record.external_id)
            touched_plans.add(plan_id)
            report.appointment_outcomes[appt.record.external_id] = "created"
            continue
        changed = False
        if appt.status is AppointmentStatus.BOOKED and current.status is not AppointmentStatus.BOOKED:
            # Booked again after a cancel or no-show: a change like a move (checked by engage.sync.overlaps).
            report.messages += appointment_changes.set_appointment_status(
                session, current.id, appt.status, actor=actor, check_overlap=False
            ).messages
            report.appointments_status_changed += 1
            changed = True
        if current.status is AppointmentStatus.BOOKED and (current.start_at, current.end_at) != (appt.start, appt.end):
            # Checked already, on the state the whole sync leaves (engage.sync.overlaps); a start in the
            # past is history the practice-management system recorded (its reminders are skipped).
            report.messages += appointment_changes.move_appointment(
                session,
                current.id,
                appt.start,
                actor=actor,
                length=appt.end - appt.start,
                allow_past=True,
                check_overlap=False,
            ).messages
            report.appointments_moved += 1
            changed = True
        if current.status is not appt.status:
            report.messages += appointment_changes.set_appointment_status(
                session, current.id, appt.status, actor=actor
            ).messages
            report.appointments_status_changed += 1
            changed = True
        practitioner_id = _practitioner_of(appt.record, practitioners)
        if appt.record.practitioner_external_id and current.practitioner_id != practitioner_id:
            current.practitioner_id = practitioner_id  # who sees the visit: no message depends on it
            changed = True
        report.appointments_unchanged += 0 if changed else 1
        report.appointment_outcomes[appt.record.external_id] = "updated" if changed else "unchanged"
        report.appointment_ids[appt.record.external_id] = current.id
    for start in range(0, len(new_rows), _CHUNK * 5):
        ids = session.scalars(
            insert(Appointment).returning(Appointment.id, sort_by_parameter_order=True),
            new_rows[start : start + _CHUNK * 5],
        ).all()
        report.appointment_ids.update(zip(new_keys[start : start + _CHUNK * 5], ids, strict=True))
    report.appointments_created = len(new_rows)
    # Plans enrolled already that got new appointments: re-plan them; new plans: enrol them.
    to_enrol: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for plan_id, (patient_id, sequence, is_new) in plan_info.items():
        if is_new and sequence:
            to_enrol[sequence].append((patient_id, plan_id))
    for sequence, pairs in to_enrol.items():
        for _, result in enroll_many(session, pairs, sequence, enrolled_by=actor):
            report.messages += result
        report.enrollments_created += len(pairs)
    live: set[int] = set()
    for chunk in _chunks(sorted(touched_plans)):
        live.update(
            session.scalars(
                select(Enrollment.plan_id).where(Enrollment.plan_id.in_(chunk), Enrollment.status.in_(PLANNING_ACTIVE))
            )
        )
    enrolled_now = {plan_id for pairs in to_enrol.values() for _, plan_id in pairs}
    for plan_id in sorted(live - enrolled_now):
        report.messages += reconcile_plan(session, plan_id)


#: plan id -> (patient id, sequence, made by this sync)
PlanInfo = dict[int, tuple[int, str | None, bool]]


def _plans_for(
    session: Session,
    clinic: Clinic,
    appts: list[CheckedAppointment],
    patients: dict[str, Patient],
    report: SyncReport,
    now: datetime,
    practitioners: dict[str, int],
) -> tuple[dict[str, int], PlanInfo]:
    """Appointment external id -> plan id for the new appointments (making the plans that are missing),
    and what each of those plans is."""
    info: PlanInfo = {}
    wanted: dict[str, list[CheckedAppointment]] = defaultdict(list)  # plan external id -> new appointments
    fallback: list[CheckedAppointment] = []
    sequence_of: dict[str, str | None] = {}  # appointment external id -> the sequence of the plan it goes into
    for appt in appts:
        if appt.existing is not None:
            continue
        record = appt.record
        sequence = record.sequence
        # No sequence named: the patient's newest active plan, else the clinic's default sequence.
        if (
            not record.plan_external_id
            and not sequence
            and clinic.default_sequence
            and _newest_active_plan(session, patients[record.patient_external_id].id) is None
        ):
            sequence = clinic.default_sequence
        sequence_of[record.external_id] = sequence
        plan_ext = record.plan_external_id or (f"{record.patient_external_id}/{sequence}" if sequence else None)
        if plan_ext is None:
            fallback.append(appt)
        else:
            wanted[plan_ext].append(appt)
    found = by_external_id(session, TreatmentPlan, TreatmentPlan.external_clinic_id, clinic.id, set(wanted))
    result: dict[str, int] = {}
    new_plans: list[tuple[str, CheckedAppointment, int]] = []
    for plan_ext, group in wanted.items():
        plan = found.get(plan_ext)
        if plan is None:
            new_plans.append((plan_ext, group[0], len(group)))
            continue
        for appt in group:
            result[appt.record.external_id] = plan.id
        info[plan.id] = (plan.patient_id, sequence_of[group[0].record.external_id], False)
    if new_plans:
        rows = []
        names = sequence_names(session, clinic.id)
        for plan_ext, first, count in new_plans:
            first_sequence = sequence_of[first.record.external_id]
            sequence_name = names.get(first_sequence, first_sequence) if first_sequence else "treatment"
            rows.append(
                {
                    "patient_id": patients[first.record.patient_external_id].id,
                    "condition": first.record.condition or sequence_name,
                    "modality": first.record.modality or "",
                    "planned_sessions": count,
                    "cadence_minutes": 7 * 24 * 60,
                    "session_minutes": first.record.minutes,
                    "reassess_every": 3,
                    "status": PlanStatus.ACTIVE,
                    "external_id": plan_ext,
                    "external_clinic_id": clinic.id,
                    "created_at": now,
                    "practitioner_id": _practitioner_of(first.record, practitioners),
                }
            )
        ids = session.scalars(
            insert(TreatmentPlan).returning(TreatmentPlan.id, sort_by_parameter_order=True), rows
        ).all()
        for (plan_ext, first, _), plan_id in zip(new_plans, ids, strict=True):
            for appt in wanted[plan_ext]:
                result[appt.record.external_id] = plan_id
            info[plan_id] = (patients[first.record.patient_external_id].id, sequence_of[first.record.external_id], True)
        report.plans_created = len(ids)
    for appt in fallback:
        patient = patients[appt.record.patient_external_id]
        newest = _newest_active_plan(session, patient.id)
        if newest is None:
            raise SyncErrors(
                [
                    SyncError(
                        appt.record.where,
                        "sequence",
                        "the patient has no active plan: name a sequence or a plan external id (or set the "
                        "clinic's default sequence)",
                    )
                ]
            )
        result[appt.record.external_id] = newest
        info.setdefault(newest, (patient.id, None, False))
    return result, info


def _newest_active_plan(session: Session, patient_id: int) -> int | None:
    return session.scalar(
        select(TreatmentPlan.id)
        .where(TreatmentPlan.patient_id == patient_id, TreatmentPlan.status == PlanStatus.ACTIVE)
        .order_by(TreatmentPlan.id.desc())
        .limit(1)
    )


def _practitioners(
    session: Session, clinic_id: int, appts: list[CheckedAppointment], errors: list[SyncError]
) -> dict[str, int]:
    """Practitioner external id -> id, adding the named new ones; an error at each record naming an unknown
    practitioner without a name (then nothing is added: the sync is refused)."""
    wanted: dict[str, str | None] = {}
    for appt in appts:
        ext = (appt.record.practitioner_external_id or "").strip()
        if ext:
            wanted[ext] = wanted.get(ext) or appt.record.practitioner_name
    known = set(
        session.scalars(
            select(Practitioner.external_id).where(
                Practitioner.clinic_id == clinic_id, Practitioner.external_id.in_(wanted)
            )
        )
    )
    for appt in appts:
        ext = (appt.record.practitioner_external_id or "").strip()
        if ext and ext not in known and not wanted[ext]:
            errors.append(
                SyncError(
                    appt.record.where,
                    "practitioner_external_id",
                    f"no practitioner with external id {ext!r}: give practitioner_name to add one",
                )
            )
    return {} if errors else match_external(session, clinic_id, wanted)


def _practitioner_of(record: AppointmentRecord, practitioners: dict[str, int]) -> int | None:
    return practitioners.get((record.practitioner_external_id or "").strip())


def _chunks(items: list[int]) -> list[list[int]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]
