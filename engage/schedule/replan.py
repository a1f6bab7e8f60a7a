"""Re-plan many enrollments to a version of their sequence at once (publishing to current patients).

The same planning and the same diff as :func:`engage.schedule.reconcile.reconcile_enrollment`, with the
reads and writes batched: a chunk of enrollments is locked (``FOR UPDATE``), switched to the version and
counted as re-planned (``plan_version``), its records and outbox rows are read in a few statements (the
rows ``FOR UPDATE``, so a dispatcher cannot take one until the transaction ends), each enrollment is
planned and diffed in memory, and the changes are written with one statement per kind. Rows already
handed to a provider are history, never touched, so a step already sent is never sent again.
"""

from __future__ import annotations

import gc
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, Enum, Integer, String, Text, any_, cast, literal, select, type_coerce, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.records.models import (
    HANDED_OVER_STATUSES,
    Appointment,
    AppointmentStatus,
    Channel,
    Clinic,
    Enrollment,
    Message,
    MessageStatus,
    Patient,
    TreatmentPlan,
    UTCDateTime,
)
from engage.schedule.enrollments import reach_many
from engage.schedule.planning import AppointmentFacts, EnrollmentFacts, SentSms, plan_messages
from engage.schedule.reconcile import (
    PLANNING_ACTIVE,
    BatchWrites,
    ReconcileResult,
    apply_diff,
    plan_facts,
    policy_from,
)
from engage.schedule.versions import SequenceContent
from engage.schedule.welcome import WELCOME_STEP

CHUNK = 500
#: Seconds each phase of the re-plans in this process took, [wall, CPU of this process]: reading, planning,
#: diffing, writing (the publish benchmark prints it; cheap enough to keep: a few clock reads an enrollment).
PHASES: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])


class _Laps:
    """Adds the time since the last lap to a phase of :data:`PHASES`."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self, phase: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        spent = PHASES[phase]
        spent[0] += wall - self.wall
        spent[1] += cpu - self.cpu
        self.wall, self.cpu = wall, cpu


@dataclass
class Replanned:
    """What re-planning did: the diff's counts, and how many of the inserted rows are scheduled to go."""

    result: ReconcileResult
    scheduled_inserts: int = 0
    enrollments: int = 0

    @property
    def changed(self) -> int:
        """Pending messages whose time (or text, channel, appointment) changed."""
        return self.result.moved + self.result.updated

    @property
    def cancelled(self) -> int:
        """Pending messages that will not go (no longer planned, or now skipped)."""
        return self.result.cancelled + self.result.skipped

    @property
    def added(self) -> int:
        """Messages that will go and would not have: new ones, and cancelled or skipped ones planned again."""
        return self.scheduled_inserts + self.result.revived


def replan_enrollments(session: Session, enrollment_ids: Iterable[int], content: SequenceContent) -> Replanned:
    """Switch the enrollments to ``content`` (its version) and re-plan them; in the caller's transaction."""
    ids = sorted(set(enrollment_ids))
    total = Replanned(ReconcileResult())
    with _no_cyclic_gc():
        unwritten: _Unwritten | None = None
        for start in range(0, len(ids), CHUNK):
            unwritten = _replan_chunk(session, ids[start : start + CHUNK], content, total, unwritten)
        if unwritten is not None:
            laps = _Laps()
            unwritten.write(session)
            laps.lap("write")
    return total


@dataclass
class _Unwritten:
    """A planned chunk's writes, made while the next chunk is planned (:func:`_replan_chunk`)."""

    writes: BatchWrites
    enrollments: list[Any]
    existing: dict[int, list[Any]]

    def send(self, session: Session) -> Callable[[], None]:
        """Make the writes, the largest UPDATE left running on the server; return what finishes them."""
        waiting = self.writes.write(session, defer=True)

        def finish() -> None:
            if waiting is not None:
                waiting()
            _restamp_held(session, self.enrollments, self.existing)

        return finish

    def write(self, session: Session) -> None:
        self.send(session)()


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Python's cycle collector off while re-planning: a chunk makes a few hundred thousand small objects (rows,
    planned messages, their contexts), nearly none in a cycle, and the collector kept walking them all (a tenth
    of a publish's CPU). Reference counting still frees them; the collector runs again afterwards."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def switch_version(session: Session, enrollment_ids: list[int], version: int | None) -> None:
    """Make the enrollments follow ``version`` without re-planning: for a version whose steps are the same as
    the one they followed (only texts changed), their messages stay as planned."""
    for start in range(0, len(enrollment_ids), CHUNK):
        session.execute(
            update(Enrollment)
            .where(_among(session, Enrollment.id, enrollment_ids[start : start + CHUNK]))
            .values(sequence_version=version, updated_at=Enrollment.updated_at)
        )


def _replan_chunk(
    session: Session, ids: list[int], content: SequenceContent, total: Replanned, before: _Unwritten | None
) -> _Unwritten:
    """Read, plan and diff a chunk of enrollments; return its writes, not made yet. ``before``: the previous
    chunk's writes, made once this chunk is read, the largest one running on the server while this one is
    planned (the chunks' rows are apart; what a chunk reads of others, handed-over SMS, no re-plan writes)."""
    laps = _Laps()
    session.flush()
    # Plain rows (the columns planning and the diff read), not ORM objects: thousands of them per publish.
    enrollments: list[Any] = [
        _Plain(found)
        for found in session.connection().execute(
            select(
                Enrollment.id,
                Enrollment.patient_id,
                Enrollment.plan_id,
                Enrollment.status,
                Enrollment.created_at,
                Enrollment.plan_version,
            )
            .where(_among(session, Enrollment.id, ids))
            .order_by(Enrollment.id)
            .with_for_update()
        )
    ]
    session.execute(
        update(Enrollment)
        .where(_among(session, Enrollment.id, ids))
        .values(sequence_version=content.version, updated_at=Enrollment.updated_at)  # not a change staff made
    )
    laps.lap("read.enrollments")
    plans = _rows_by_id(
        session,
        (TreatmentPlan.id, TreatmentPlan.status, TreatmentPlan.planned_sessions, TreatmentPlan.exercises),
        {e.plan_id for e in enrollments},
    )
    patients = _rows_by_id(
        session,
        (Patient.id, Patient.clinic_id, Patient.phone, Patient.phone_invalid, Patient.email, Patient.timezone),
        {e.patient_id for e in enrollments},
    )
    clinics = _by_id(session, Clinic, {p.clinic_id for p in patients.values()})
    laps.lap("read.plans+patients")
    appointments: dict[int, list[AppointmentFacts]] = defaultdict(list)
    found_appointments = session.connection().execute(
        select(
            Appointment.id,
            Appointment.plan_id,
            *_unprocessed(
                session, Appointment.start_at, Appointment.end_at, Appointment.status, Appointment.created_at
            ),
        ).where(_among(session, Appointment.plan_id, plans))
    )
    for appointment_id, plan_id, start, end, status, booked in found_appointments.all():
        appointments[plan_id].append(
            AppointmentFacts(
                appointment_id, _utc(start), _utc(end), _APPOINTMENT_STATUS[status], booked and _utc(booked)
            )
        )
    laps.lap("read.appointments")
    reach = reach_many(session, patients.values())
    laps.lap("read.reach")
    history = _sms_history(session, list(patients))
    laps.lap("read.history")
    # FOR UPDATE: a dispatcher cannot claim these rows until this transaction ends. Plain rows rather than
    # ORM objects: a clinic's outbox is tens of thousands of rows, and diffing reads only these columns.
    existing: dict[int, list[Any]] = defaultdict(list)
    found_rows = session.connection().execute(
        select(*_unprocessed(session, *_ROW_COLUMNS))
        .where(_among(session, Message.enrollment_id, ids))
        .order_by(Message.id)
        .with_for_update()
    )
    for values in found_rows.all():  # fetchall: one call, not one per row
        row = _Row(values)
        existing[row.enrollment_id].append(row)
    now = utcnow()
    writes = BatchWrites()
    laps.lap("read.messages")
    finish = before.send(session) if before is not None else None
    laps.lap("write")
    try:
        for enrollment in enrollments:
            plan = plans[enrollment.plan_id]
            patient = patients[enrollment.patient_id]
            desired = []
            if enrollment.status in PLANNING_ACTIVE:
                texts_off = reach[patient.id].get(Channel.SMS) == f"opted out of {Channel.SMS.value}"
                desired = plan_messages(
                    plan_facts(plan),
                    appointments[plan.id],
                    content.sequence,
                    policy_from(patient, clinics[patient.clinic_id], texts_off=texts_off),
                    EnrollmentFacts(enrollment.id, enrollment.created_at),
                    tuple(
                        SentSms(due_at, key if owner == enrollment.id else None)
                        for owner, key, due_at in history.get(patient.id, ())
                    ),
                )
            laps.lap("plan")
            inserted_before = len(writes.inserts)
            total.result += apply_diff(
                session,
                enrollment=enrollment,
                clinic_id=patient.clinic_id,
                desired=desired,
                existing=existing[enrollment.id],
                reach=reach[patient.id],
                appointment_status={a.id: a.status for a in appointments[plan.id]},
                plan_status=plan.status,
                now=now,
                batch=writes,
            )
            total.scheduled_inserts += sum(
                1 for row in writes.inserts[inserted_before:] if row["status"] is MessageStatus.SCHEDULED
            )
            total.enrollments += 1
            laps.lap("diff")
    finally:
        if finish is not None:  # the connection is free again only once the server has answered
            finish()
            laps.lap("write")
    return _Unwritten(writes, enrollments, existing)


def _restamp_held(session: Session, enrollments: Sequence[Any], existing: dict[int, list[Any]]) -> None:
    """Count a re-plan (``plan_version``) only for enrollments with a row a dispatcher holds (queued, sending).

    A row still scheduled is what the new version plans, under the enrollment's current number as much as
    under a new one; only a held row was planned from the old version, and its send-time check re-plans it
    when its stamp is older than the enrollment's. Bumping every enrollment would rewrite every scheduled
    row of the clinic (the stamp) for nothing.
    """
    held = [
        e
        for e in enrollments
        if any(row.status in (MessageStatus.QUEUED, MessageStatus.SENDING) for row in existing.get(e.id, ()))
    ]
    if not held:
        return
    ids = [e.id for e in held]
    session.execute(
        update(Enrollment)
        .where(_among(session, Enrollment.id, ids))
        .values(plan_version=Enrollment.plan_version + 1, updated_at=Enrollment.updated_at)
    )
    session.execute(
        update(Message)
        .where(_among(session, Message.enrollment_id, ids), Message.status == MessageStatus.SCHEDULED)
        .values(plan_version=Message.plan_version + 1)
        .execution_options(synchronize_session=False)
    )
    for enrollment in held:
        enrollment.plan_version = (enrollment.plan_version or 0) + 1
        for row in existing.get(enrollment.id, ()):
            if row.status is MessageStatus.SCHEDULED:
                row.plan_version = (row.plan_version or 0) + 1


_ROW_COLUMNS = (
    Message.id,
    Message.enrollment_id,
    Message.patient_id,
    Message.step_key,
    Message.occurrence,
    Message.status,
    Message.status_reason,
    Message.due_at,
    Message.appointment_id,
    Message.channel,
    Message.template,
    # As text, parsed once per distinct value: a sequence's rows share a handful of contexts, and decoding
    # 150,000 of them one by one was a tenth of a publish.
    cast(Message.context, Text).label("context"),
    Message.plan_version,
)
_ROW_NAMES = tuple(column.key for column in _ROW_COLUMNS)


class _Plain:
    """A row read for the diff, its columns as attributes (some are written back after the writes)."""

    def __init__(self, found: Any) -> None:
        self.__dict__.update(found._mapping)


class _Row:
    """An outbox row as :func:`engage.schedule.reconcile.apply_diff` reads it (the columns it compares)."""

    enrollment_id: int
    context: dict[str, Any]

    def __init__(self, values: Any) -> None:
        found = dict(zip(_ROW_NAMES, values, strict=True))
        found["context"] = _context(found["context"])
        found["due_at"] = _utc(found["due_at"])
        found["status"] = _MESSAGE_STATUS[found["status"]]
        found["channel"] = _CHANNEL[found["channel"]]
        self.__dict__ = found


# The enum members by their stored value (and by themselves: a StrEnum member hashes as its value), for
# columns read without SQLAlchemy's per-value processing (:func:`_unprocessed`).
_MESSAGE_STATUS = {status.value: status for status in MessageStatus}
_APPOINTMENT_STATUS = {status.value: status for status in AppointmentStatus}
_CHANNEL = {channel.value: channel for channel in Channel}


#: The zones PostgreSQL calls UTC by other names (its default is often Etc/UTC): psycopg returns timestamps in
#: one of these, and re-labelling them is exact and cheaper than a conversion.
_UTC_ZONES = (ZoneInfo("Etc/UTC"), ZoneInfo("UTC"))


def _utc(value: datetime) -> datetime:
    """What :class:`engage.records.models.UTCDateTime` makes of a value :func:`_unprocessed` read."""
    zone = value.tzinfo
    if zone is timezone.utc:
        return value
    if zone in _UTC_ZONES:
        return value.replace(tzinfo=timezone.utc)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _unprocessed(session: Session, *columns: Any) -> list[Any]:
    """``columns`` as PostgreSQL's driver returns them, without SQLAlchemy's processing of each value (an enum
    column stays its text, a timestamp psycopg's aware datetime, in UTC in engage's sessions): a publish reads
    a few hundred thousand values, and the processing was a third of reading them. Elsewhere: as they are."""
    if session.get_bind().dialect.name != "postgresql":
        return list(columns)
    plain: dict[type, Any] = {Enum: String(), UTCDateTime: DateTime(timezone=True)}
    return [
        type_coerce(column, plain[type(column.type)]).label(column.key)
        if type(getattr(column, "type", None)) in plain
        else column
        for column in columns
    ]


@lru_cache(maxsize=4096)
def _context(stored: str | None) -> dict[str, Any]:
    """A row's context from its stored text; shared between rows (read-only: the diff only compares it)."""
    return json.loads(stored) if stored else {}


def _among(session: Session, column: Any, ids: Iterable[int]) -> Any:
    """``column IN ids``; on PostgreSQL ``column = ANY(<one array>)``: the same statement text for every chunk
    (psycopg parses a statement with 500 parameters afresh each time, and that added up)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(list(ids), ARRAY(Integer)))
    return column.in_(list(ids))


def _rows_by_id(session: Session, columns: tuple[Any, ...], ids: set[int]) -> dict[int, Any]:
    """The rows of ``columns`` (the first is the id) whose id is in ``ids``, by id."""
    query = select(*columns).where(_among(session, columns[0], ids))
    return {row[0]: row for row in session.connection().execute(query)}


def _by_id(session: Session, model: Any, ids: set[int]) -> dict[int, Any]:
    return {record.id: record for record in session.scalars(select(model).where(model.id.in_(list(ids))))}


def _sms_history(session: Session, patient_ids: list[int]) -> dict[int, list[tuple[int | None, tuple[str, str], Any]]]:
    """Per patient, their SMS already handed to a provider: (enrollment id, (step, occurrence), due) (the caps)."""
    found: dict[int, list[tuple[int | None, tuple[str, str], Any]]] = defaultdict(list)
    rows = session.connection().execute(
        select(Message.patient_id, Message.enrollment_id, Message.step_key, Message.occurrence, Message.due_at).where(
            _among(session, Message.patient_id, patient_ids),
            Message.channel == Channel.SMS,
            Message.status.in_(HANDED_OVER_STATUSES),
            Message.step_key != WELCOME_STEP,
        )
    )
    for patient_id, owner, step_key, occurrence, due_at in rows:
        found[patient_id].append((owner, (step_key, occurrence), due_at))
    return found
