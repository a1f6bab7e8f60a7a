"""Enrol a patient's plan into a sequence; pause, resume, cancel; read the patient's timeline.

Every function works inside the caller's session (use ``engage.db.session_scope()``)
and raises ``InvalidInput`` or ``NotFound`` before writing anything.

:func:`enroll_many` is the bulk path (a handful of statements for thousands of
enrolments); :func:`enroll` is the same code for one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.errors import InvalidInput, NotFound
from engage.records.audit import AuditAction, audit, audit_many
from engage.records.limits import check_values
from engage.records.models import (
    Appointment,
    Channel,
    Clinic,
    ConsentEvent,
    ConsentState,
    Enrollment,
    EnrollmentStatus,
    Message,
    Patient,
    PlanStatus,
    TreatmentPlan,
)
from engage.schedule.planning import EnrollmentFacts, plan_messages
from engage.schedule.reconcile import (
    PLANNING_ACTIVE,
    ReconcileResult,
    appointment_facts,
    insert_rows,
    new_row,
    plan_facts,
    policy_for,
    reconcile_enrollment,
    target_for,
)
from engage.schedule.versions import SequenceContent, published_content
from engage.schedule.welcome import wants_welcome, welcome_row, welcomed

_CHUNK = 1000  # ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits


def enroll(
    session: Session, patient_id: int, plan_id: int, sequence_key: str, *, enrolled_by: str
) -> tuple[Enrollment, ReconcileResult]:
    """Enrol ``plan_id`` (which must belong to ``patient_id``) into ``sequence_key`` and plan its messages.

    Raises ``NotFound`` (unknown patient, plan or sequence: the message lists the known
    sequences; another clinic's plan is "unknown" too) or ``InvalidInput`` (plan of another patient
    of the same clinic, cancelled plan, already
    actively enrolled in that sequence for that plan).
    """
    [(enrollment_id, result)] = enroll_many(session, [(patient_id, plan_id)], sequence_key, enrolled_by=enrolled_by)
    return session.get_one(Enrollment, enrollment_id), result


def enroll_many(
    session: Session, pairs: Iterable[tuple[int, int]], sequence_key: str, *, enrolled_by: str
) -> list[tuple[int, ReconcileResult]]:
    """Enrol many (patient id, plan id) pairs at once: ``[(enrollment id, result), ...]`` in input order.

    All or nothing: any bad pair raises before anything is written. A handful of statements
    whatever the batch size: check the request, load every record it names (refusing what
    cannot be enrolled), insert the enrollments, plan their messages, add the welcome SMS,
    write the outbox rows, audit.
    """
    pairs = list(pairs)
    _check_request(pairs, sequence_key, enrolled_by)
    batch = _load(session, pairs, sequence_key)
    # Each clinic's published version of the sequence, else the shipped file (NotFound: neither exists).
    contents = {clinic_id: published_content(session, clinic_id, sequence_key) for clinic_id in batch.clinics}
    now = utcnow()
    enrollment_ids = _insert_enrollments(session, batch, contents, sequence_key, enrolled_by, now)
    planned = _plan(batch, contents, enrollment_ids, now)
    welcomes = _welcome_rows(session, batch, planned, now)
    insert_rows(session, [row for eid, rows in planned.items() for row in [*rows, *_maybe(welcomes.get(eid))]])
    audit_many(
        session,
        actor=enrolled_by,
        action=AuditAction.ENROLLMENT_CREATE,
        subject_type="enrollment",
        events=[
            (
                batch.patients[patient_id].clinic_id,
                enrollment_id,
                {"patient_id": patient_id, "plan_id": plan_id, "sequence": sequence_key},
            )
            for enrollment_id, (patient_id, plan_id) in zip(enrollment_ids, pairs, strict=True)
        ],
        at=now,
    )
    session.flush()
    return [
        (enrollment_id, ReconcileResult(inserted=len(planned[enrollment_id]) + (enrollment_id in welcomes)))
        for enrollment_id in enrollment_ids
    ]


def _maybe(row: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [row] if row is not None else []


@dataclass
class _Batch:
    """Everything an :func:`enroll_many` batch reads, loaded once."""

    pairs: list[tuple[int, int]]
    plans: dict[int, TreatmentPlan]
    patients: dict[int, Patient]
    clinics: dict[int, Clinic]
    appointments: dict[int, list[Appointment]]  # plan id -> its appointments
    reach: dict[int, dict[Channel, str | None]]  # patient id -> channel -> why not reachable (None: reachable)


def _check_request(pairs: list[tuple[int, int]], sequence_key: str, enrolled_by: str) -> None:
    """Refuse a request that is not sound in itself (lengths, no plan listed twice)."""
    check_values(Enrollment, enrolled_by=enrolled_by, sequence_key=sequence_key)  # written with insert(), no flush
    plan_ids = [plan_id for _, plan_id in pairs]
    if len(set(plan_ids)) != len(plan_ids):
        raise InvalidInput("a plan is listed twice")


def _load(session: Session, pairs: list[tuple[int, int]], sequence_key: str) -> _Batch:
    """Load every record the batch names; raise ``NotFound`` / ``InvalidInput`` for a pair that cannot be enrolled
    (unknown patient or plan, another patient's plan, a cancelled plan, a plan already enrolled in the sequence)."""
    plan_ids = [plan_id for _, plan_id in pairs]
    plans = {p.id: p for p in _fetch(session, TreatmentPlan, TreatmentPlan.id, plan_ids)}
    patients = {p.id: p for p in _fetch(session, Patient, Patient.id, [patient_id for patient_id, _ in pairs])}
    clinics = {c.id: c for c in _fetch(session, Clinic, Clinic.id, {p.clinic_id for p in patients.values()})}
    for patient_id, plan_id in pairs:
        if patient_id not in patients:
            raise NotFound(f"no patient with id {patient_id}")
        plan = plans.get(plan_id)
        if plan is None:
            raise NotFound(f"no treatment plan with id {plan_id}")
        if plan.patient_id != patient_id:
            owner = session.get(Patient, plan.patient_id)
            if owner is None or owner.clinic_id != patients[patient_id].clinic_id:
                # Another clinic's plan: answer as for a plan that does not exist, so ids reveal nothing.
                raise NotFound(f"no treatment plan with id {plan_id}")
            raise InvalidInput(f"treatment plan {plan_id} belongs to another patient, not patient {patient_id}")
        if plan.status is PlanStatus.CANCELLED:
            raise InvalidInput(f"treatment plan {plan_id} is cancelled")
    for chunk in _chunks(plan_ids):
        taken = session.execute(
            select(Enrollment.id, Enrollment.plan_id).where(
                Enrollment.plan_id.in_(chunk),
                Enrollment.sequence_key == sequence_key,
                Enrollment.status.in_(PLANNING_ACTIVE),
            )
        ).first()
        if taken is not None:
            raise InvalidInput(
                f"plan {taken.plan_id} is already enrolled in {sequence_key!r} (enrollment {taken.id}); "
                "cancel that enrollment first"
            )
    appointments: dict[int, list[Appointment]] = {plan_id: [] for plan_id in plan_ids}
    for appointment in _fetch(session, Appointment, Appointment.plan_id, plan_ids):
        appointments[appointment.plan_id].append(appointment)
    return _Batch(pairs, plans, patients, clinics, appointments, reach_many(session, patients.values()))


def _insert_enrollments(
    session: Session,
    batch: _Batch,
    contents: dict[int, SequenceContent],
    sequence_key: str,
    enrolled_by: str,
    now: datetime,
) -> list[int]:
    """Insert the active enrollments, each following its clinic's version; their ids in input order."""
    try:
        return list(
            session.scalars(
                insert(Enrollment).returning(Enrollment.id, sort_by_parameter_order=True),
                [
                    {
                        "patient_id": patient_id,
                        "plan_id": plan_id,
                        "sequence_key": sequence_key,
                        "sequence_version": contents[batch.patients[patient_id].clinic_id].version,
                        "status": EnrollmentStatus.ACTIVE,
                        "enrolled_by": enrolled_by,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for patient_id, plan_id in batch.pairs
                ],
            )
        )
    except IntegrityError:  # someone enrolled the same plan between our check and our insert
        raise InvalidInput(f"a plan is already enrolled in {sequence_key!r}; cancel that enrollment first") from None


def _plan(
    batch: _Batch, contents: dict[int, SequenceContent], enrollment_ids: list[int], now: datetime
) -> dict[int, list[dict[str, Any]]]:
    """Enrollment id -> the outbox rows the planner wants for it (pure planning, then each row's target)."""
    planned: dict[int, list[dict[str, Any]]] = {}
    for enrollment_id, (patient_id, plan_id) in zip(enrollment_ids, batch.pairs, strict=True):
        patient = batch.patients[patient_id]
        desired = plan_messages(
            plan_facts(batch.plans[plan_id]),
            [appointment_facts(a) for a in batch.appointments[plan_id]],
            contents[patient.clinic_id].sequence,
            policy_for(patient, batch.clinics[patient.clinic_id]),
            EnrollmentFacts(enrollment_id, now),
        )
        reach = batch.reach[patient_id]
        planned[enrollment_id] = [
            new_row(
                message,
                target_for(message, enrollment_status=EnrollmentStatus.ACTIVE, enrolled_at=now, reach=reach, now=now),
                enrollment_id=enrollment_id,
                patient_id=patient_id,
                clinic_id=patient.clinic_id,
                now=now,
            )
            for message in desired
        ]
    return planned


def _welcome_rows(
    session: Session, batch: _Batch, planned: dict[int, list[dict[str, Any]]], now: datetime
) -> dict[int, dict[str, Any]]:
    """Enrollment id -> its welcome SMS row: the first enrollment that will text a patient SMS can reach now, and
    who has no welcome sent or on its way, welcomes them (``engage.schedule.welcome``)."""
    greeted = welcomed(session, batch.patients)
    welcomes: dict[int, dict[str, Any]] = {}
    for enrollment_id, (patient_id, _) in zip(planned, batch.pairs, strict=True):
        if wants_welcome(
            already_welcomed=patient_id in greeted,
            sms_refused=batch.reach[patient_id].get(Channel.SMS),
            channels=[row["channel"] for row in planned[enrollment_id]],
        ):
            patient = batch.patients[patient_id]
            clinic = batch.clinics[patient.clinic_id]
            welcomes[enrollment_id] = welcome_row(enrollment_id=enrollment_id, patient=patient, clinic=clinic, now=now)
            greeted.add(patient_id)
    return welcomes


def reach_many(session: Session, patients: Iterable[Patient]) -> dict[int, dict[Channel, str | None]]:
    """``engage.conversation.consent.reachability`` for many patients and both channels in a few queries.

    Same rules (tests hold the two to agreement): contact details first, then the
    newest consent event on the channel (none: opted in).
    """
    patients = list(patients)
    newest: dict[tuple[int, Channel], ConsentState] = {}
    for chunk in _chunks([p.id for p in patients]):
        events = session.execute(
            select(ConsentEvent.patient_id, ConsentEvent.channel, ConsentEvent.state)
            .where(ConsentEvent.patient_id.in_(chunk))
            .order_by(ConsentEvent.id)
        )
        for patient_id, channel, state in events:
            newest[(patient_id, channel)] = state
    reach: dict[int, dict[Channel, str | None]] = {}
    for patient in patients:
        reasons: dict[Channel, str | None] = {}
        for channel in Channel:
            reason: str | None = None
            if channel is Channel.SMS and not patient.phone:
                reason = "no phone number"
            elif channel is Channel.SMS and patient.phone_invalid:
                reason = "phone number marked invalid by the provider"
            elif channel is Channel.EMAIL and not patient.email:
                reason = "no email address"
            elif newest.get((patient.id, channel)) is ConsentState.OPTED_OUT:
                reason = f"opted out of {channel.value}"
            reasons[channel] = reason
        reach[patient.id] = reasons
    return reach


def get_enrollment(session: Session, enrollment_id: int) -> Enrollment:
    enrollment = session.get(Enrollment, enrollment_id)
    if enrollment is None:
        raise NotFound(f"no enrollment with id {enrollment_id}")
    return enrollment


def pause(session: Session, enrollment_id: int, *, actor: str) -> tuple[Enrollment, ReconcileResult]:
    """Stop sending: pending messages become ``cancelled`` with reason "paused". Pausing twice is a no-op."""
    return _change(session, enrollment_id, EnrollmentStatus.PAUSED, {EnrollmentStatus.ACTIVE}, actor)


def resume(session: Session, enrollment_id: int, *, actor: str) -> tuple[Enrollment, ReconcileResult]:
    """Start again: paused messages still in the future are scheduled again; past ones stay cancelled."""
    return _change(session, enrollment_id, EnrollmentStatus.ACTIVE, {EnrollmentStatus.PAUSED}, actor)


def cancel(session: Session, enrollment_id: int, *, actor: str) -> tuple[Enrollment, ReconcileResult]:
    """End the enrollment for good: pending messages become ``cancelled``; sent ones stay as they are."""
    return _change(
        session, enrollment_id, EnrollmentStatus.CANCELLED, {EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED}, actor
    )


def _change(
    session: Session, enrollment_id: int, to: EnrollmentStatus, allowed_from: set[EnrollmentStatus], actor: str
) -> tuple[Enrollment, ReconcileResult]:
    enrollment = get_enrollment(session, enrollment_id)
    if enrollment.status is to:
        return enrollment, reconcile_enrollment(session, enrollment.id)
    if enrollment.status not in allowed_from:
        raise InvalidInput(f"enrollment {enrollment_id} is {enrollment.status.value}; it cannot become {to.value}")
    before = enrollment.status
    enrollment.status = to
    enrollment.updated_at = utcnow()
    session.flush()
    result = reconcile_enrollment(session, enrollment.id)
    audit(
        session,
        clinic_id=enrollment.patient.clinic_id,
        actor=actor,
        action=_ACTION[to],
        subject_type="enrollment",
        subject_id=enrollment.id,
        before=before.value,
        after=to.value,
    )
    return enrollment, result


_ACTION = {
    EnrollmentStatus.PAUSED: AuditAction.ENROLLMENT_PAUSE,
    EnrollmentStatus.ACTIVE: AuditAction.ENROLLMENT_RESUME,
    EnrollmentStatus.CANCELLED: AuditAction.ENROLLMENT_CANCEL,
}


def timeline(session: Session, patient_id: int) -> list[dict[str, Any]]:
    """Every outbox row of the patient, sorted by due time (then id), for staff and the CLI.

    Keys: ``id, enrollment_id, step, channel, template, due_at`` (ISO UTC),
    ``local_due_at`` (ISO with the offset of the patient's time zone), ``status``,
    ``reason`` (why skipped/cancelled/failed, else None), ``appointment_id``.
    """
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"no patient with id {patient_id}")
    tz = ZoneInfo(patient.effective_timezone)
    messages = session.scalars(
        select(Message).where(Message.patient_id == patient_id).order_by(Message.due_at, Message.id)
    )
    return [
        {
            "id": m.id,
            "enrollment_id": m.enrollment_id,
            "step": m.step_key,
            "occurrence": m.occurrence,
            "channel": m.channel.value,
            "template": m.template,
            "due_at": _iso(m.due_at),
            "local_due_at": m.due_at.astimezone(tz).isoformat(),
            "status": m.status.value,
            "reason": m.status_reason,
            "appointment_id": m.appointment_id,
        }
        for m in messages
    ]


def _iso(moment: datetime) -> str:
    return moment.isoformat()  # aware UTC: "...+00:00", as everywhere else in engage's JSON


def _chunks(values: Iterable[int]) -> list[list[int]]:
    items = list(dict.fromkeys(values))
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def _fetch(session: Session, model: type[Any], column: Any, ids: Iterable[int]) -> list[Any]:
    found: list[Any] = []
    for chunk in _chunks(ids):
        found.extend(session.scalars(select(model).where(column.in_(chunk))))
    return found
