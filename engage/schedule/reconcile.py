"""Write the difference between the desired messages and the outbox (the ``message`` table).

:func:`reconcile_enrollment` re-plans one enrollment; :func:`reconcile_plan` every
active or paused enrollment of a plan (what appointment and plan changes, pause,
resume and consent changes call). Both work inside the caller's transaction.

The rules, per (enrollment, step, occurrence):

- **Missing** -> inserted: ``scheduled``; or ``skipped`` with the reason when the
  patient cannot receive on that channel (``engage.conversation.consent.reachability``) or the
  message was already due when planned (``"due before enrolment"`` when it was due
  before the enrolment itself, e.g. enrolled after the first session, else
  ``"due in the past when planned"``); or ``cancelled`` ``"paused"`` for a paused
  enrollment (so resuming revives it).
- **Scheduled and still desired** -> moved / updated to the new due time and context,
  or turned ``skipped``/``cancelled`` when a reason now holds. A scheduled row whose
  due time did not change stays scheduled even if that time has passed: it is simply
  due, and the dispatcher takes it. One *moved* into the past is skipped instead
  (``"moved into the past"``), so a stale reminder never goes out late.
- **Cancelled or skipped, still desired, due in the future, nothing stops it now** ->
  revived to ``scheduled`` (resume, opt back in, appointment un-cancelled, phone added).
- **Scheduled and no longer desired** -> ``cancelled`` with why (appointment cancelled,
  no-show, enrollment cancelled/completed, plan cancelled, no longer planned).
- Every other row (queued, sending, sent, delivered, failed, ...) is history and is
  never touched.

A row that is (re)scheduled at a new time, moved or revived, starts afresh: no pending
retry (``next_attempt_at``), ``attempts`` 0, no last error. A row whose time did not
change keeps its retry state.

**Concurrency.** The dispatcher (``engage.delivery.claim.claim_due``) turns due ``scheduled``
rows into ``queued`` at any moment. Reconcile therefore reads the enrollment's rows
``FOR UPDATE`` (PostgreSQL; on SQLite the whole transaction already holds the write
lock, ``BEGIN IMMEDIATE``), re-reading them even when the session holds older copies,
so a row a dispatcher has taken is seen as ``queued`` (history), and one it has not
cannot be taken (``SKIP LOCKED``) until reconcile's transaction ends. Every write to an
existing row is moreover an ``UPDATE … WHERE id = … AND status = <the status read>``:
if the row changed anyway it is left alone, never overwritten.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from psycopg import DatabaseError
from psycopg.pq import ExecStatus
from sqlalchemy import CursorResult, Table, bindparam, insert, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, object_session
from sqlalchemy.orm.attributes import set_committed_value

from engage.clock import utcnow
from engage.conversation.consent import current_consent, reachability
from engage.errors import NotFound
from engage.records.clinics import sms_caps
from engage.records.models import (
    HANDED_OVER_STATUSES,
    Appointment,
    AppointmentStatus,
    Channel,
    Clinic,
    ConsentState,
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
    Patient,
    PlanStatus,
    TreatmentPlan,
)
from engage.schedule.planning import (
    AppointmentFacts,
    DesiredMessage,
    EnrollmentFacts,
    PlanFacts,
    Policy,
    SentSms,
    plan_messages,
)
from engage.schedule.versions import SequenceContent, content_at
from engage.schedule.welcome import WELCOME_STEP, is_welcome

PAUSED = "paused"
DUE_BEFORE_ENROLMENT = "due before enrolment"
DUE_IN_THE_PAST = "due in the past when planned"
MOVED_INTO_THE_PAST = "moved into the past"
_REVIVABLE = (MessageStatus.CANCELLED, MessageStatus.SKIPPED)
PLANNING_ACTIVE = (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED)
#: A row scheduled afresh (moved or revived) owes nothing to earlier attempts at another time.
_FRESH: dict[str, Any] = {"next_attempt_at": None, "attempts": 0, "last_error": None, "error_code": None}

log = logging.getLogger(__name__)


@dataclass
class ReconcileResult:
    """How many outbox rows each kind of change touched."""

    inserted: int = 0
    moved: int = 0  # scheduled rows whose due time changed
    updated: int = 0  # scheduled rows whose context/template/appointment changed, same time
    cancelled: int = 0  # scheduled -> cancelled
    skipped: int = 0  # scheduled -> skipped
    revived: int = 0  # cancelled/skipped -> scheduled
    unchanged: int = 0

    def __iadd__(self, other: ReconcileResult) -> ReconcileResult:
        for name, value in vars(other).items():  # not asdict(): it deep-copies, and publishing adds thousands
            setattr(self, name, getattr(self, name) + value)
        return self

    @property
    def changed(self) -> int:
        return self.inserted + self.moved + self.updated + self.cancelled + self.skipped + self.revived

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Target:
    status: MessageStatus
    reason: str | None = None


def target_for(
    message: DesiredMessage,
    *,
    enrollment_status: EnrollmentStatus,
    enrolled_at: datetime,
    reach: Mapping[Channel, str | None],
    now: datetime,
    already_due_ok: bool = False,
) -> Target:
    """Where a desired message should stand now.

    ``already_due_ok``: the message is a scheduled row whose time did not change, so
    being due already is no reason to skip it (the dispatcher will take it).
    """
    if message.due_at <= now and not already_due_ok:
        past = DUE_BEFORE_ENROLMENT if message.due_at < enrolled_at else DUE_IN_THE_PAST
        return Target(MessageStatus.SKIPPED, past)
    if enrollment_status is EnrollmentStatus.PAUSED:
        return Target(MessageStatus.CANCELLED, PAUSED)
    reason = reach.get(message.channel)
    if reason:
        return Target(MessageStatus.SKIPPED, reason)
    if message.skip_reason:  # after reachability: "opted out" or "no phone number" tells staff more
        return Target(MessageStatus.SKIPPED, message.skip_reason)
    return Target(MessageStatus.SCHEDULED)


def new_row(
    message: DesiredMessage,
    target: Target,
    *,
    enrollment_id: int,
    patient_id: int,
    clinic_id: int,
    now: datetime,
    plan_version: int = 0,
) -> dict[str, Any]:
    """The ``message`` table values for inserting ``message`` (for bulk ``insert()``).

    ``plan_version``: the enrollment's, as it stands in this transaction (0 for a new enrollment).
    """
    return {
        "enrollment_id": enrollment_id,
        "patient_id": patient_id,
        "clinic_id": clinic_id,
        "appointment_id": message.appointment_id,
        "step_key": message.step_key,
        "occurrence": message.occurrence,
        "channel": message.channel,
        "template": message.template,
        "context": message.context,
        "due_at": message.due_at,
        "status": target.status,
        "status_reason": target.reason,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "plan_version": plan_version,
    }


_COPY_COLUMNS = (
    "enrollment_id",
    "patient_id",
    "clinic_id",
    "appointment_id",
    "step_key",
    "occurrence",
    "channel",
    "template",
    "context",
    "due_at",
    "status",
    "status_reason",
    "attempts",
    "created_at",
    "updated_at",
    "plan_version",
)


def insert_rows(session: Session, rows: list[dict[str, Any]], chunk: int = 5000) -> None:
    """Bulk-insert outbox rows (from :func:`new_row`) in the session's transaction.

    PostgreSQL gets one ``COPY`` (psycopg would otherwise send one INSERT a row, and
    multi-row VALUES spend their time parsing parameters); SQLite an ``executemany``,
    which is already in-process and fast.
    """
    if not rows:
        return
    session.flush()
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        for start in range(0, len(rows), chunk):
            session.execute(insert(Message), rows[start : start + chunk])
        return
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(f"COPY message ({', '.join(_COPY_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(tuple(_copy_value(row[name]) for name in _COPY_COLUMNS))


def _copy_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value  # psycopg would write an Enum's name
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def reconcile_plan(session: Session, plan_id: int) -> ReconcileResult:
    """Re-plan every active or paused enrollment of ``plan_id`` and write the diff. Raises ``NotFound``."""
    if session.get(TreatmentPlan, plan_id) is None:
        raise NotFound(f"no treatment plan with id {plan_id}")
    return _reconcile_live(session, Enrollment.plan_id == plan_id)


def reconcile_patient(session: Session, patient_id: int) -> ReconcileResult:
    """Re-plan every active or paused enrollment of a patient (after a consent or contact change)."""
    return _reconcile_live(session, Enrollment.patient_id == patient_id)


def _reconcile_live(session: Session, which: Any) -> ReconcileResult:
    ids = session.scalars(
        select(Enrollment.id).where(which, Enrollment.status.in_(PLANNING_ACTIVE)).order_by(Enrollment.id)
    ).all()
    total = ReconcileResult()
    for enrollment_id in ids:
        total += reconcile_enrollment(session, enrollment_id)
    return total


def reconcile_enrollment(
    session: Session, enrollment_id: int, *, content: SequenceContent | None = None
) -> ReconcileResult:
    """Re-plan one enrollment (any status: a cancelled one just has its pending rows cancelled).

    It follows the clinic's version of its sequence it records (``sequence_version``; None: the shipped
    file); ``content``: that version already read (publishing passes the one it is making)."""
    session.flush()
    # Lock the enrollment row (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers) so two
    # reconciles of the same enrollment never race to insert the same occurrence.
    enrollment = session.scalars(
        select(Enrollment).where(Enrollment.id == enrollment_id).with_for_update()
    ).one_or_none()
    if enrollment is None:
        raise NotFound(f"no enrollment with id {enrollment_id}")
    version = _bump_plan_version(session, enrollment)
    plan = session.get_one(TreatmentPlan, enrollment.plan_id)
    patient = session.get_one(Patient, enrollment.patient_id)
    clinic = session.get_one(Clinic, patient.clinic_id)
    appointments = session.scalars(select(Appointment).where(Appointment.plan_id == plan.id)).all()
    now = utcnow()

    desired: list[DesiredMessage] = []
    if enrollment.status in PLANNING_ACTIVE:
        desired = plan_messages(
            plan_facts(plan),
            [appointment_facts(a) for a in appointments],
            (content or content_at(session, clinic.id, enrollment.sequence_key, enrollment.sequence_version)).sequence,
            policy_for(patient, clinic),
            EnrollmentFacts(enrollment.id, enrollment.created_at),
            sms_history(session, patient.id, enrollment.id),
        )
    # FOR UPDATE: a dispatcher cannot claim these rows until this transaction ends (claim_due skips locked
    # rows). populate_existing: copies the session loaded earlier (expire_on_commit=False keeps them across
    # commits) may say "scheduled" for a row a dispatcher has queued since; the locked read is the truth.
    existing = session.scalars(
        select(Message)
        .where(Message.enrollment_id == enrollment.id)
        .order_by(Message.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    reach = _LazyReach(lambda channel: reachability(session, patient, channel))
    result = apply_diff(
        session,
        enrollment=enrollment,
        clinic_id=clinic.id,
        desired=desired,
        existing=existing,
        reach=reach,
        appointment_status={a.id: a.status for a in appointments},
        plan_status=plan.status,
        now=now,
    )
    # Every row still scheduled is now what this plan wants: stamp it. Rows a dispatcher holds (queued,
    # sending) keep their older stamp, so the send-time check re-plans exactly those.
    session.execute(
        update(Message)
        .where(Message.enrollment_id == enrollment.id, Message.status == MessageStatus.SCHEDULED)
        .values(plan_version=version)
        .execution_options(synchronize_session=False)
    )
    for row in existing:
        if row.status is MessageStatus.SCHEDULED:
            set_committed_value(row, "plan_version", version)
    return result


def _bump_plan_version(session: Session, enrollment: Enrollment) -> int:
    """Count one more re-plan of ``enrollment`` (its row is locked); return the new number."""
    version = (enrollment.plan_version or 0) + 1
    session.execute(
        update(Enrollment)
        .where(Enrollment.id == enrollment.id)
        .values(plan_version=version, updated_at=Enrollment.updated_at)  # not a change staff made
        .execution_options(synchronize_session=False)
    )
    set_committed_value(enrollment, "plan_version", version)
    return version


def apply_diff(
    session: Session,
    *,
    enrollment: Enrollment,
    clinic_id: int,
    desired: Sequence[DesiredMessage],
    existing: Iterable[Message],
    reach: Mapping[Channel, str | None],
    appointment_status: Mapping[int, AppointmentStatus],
    plan_status: PlanStatus,
    now: datetime,
    batch: BatchWrites | None = None,
) -> ReconcileResult:
    """Turn ``existing`` rows into ``desired`` (see the module docstring) and count the changes.

    ``batch``: collect the writes there instead of making them (re-planning thousands of enrollments at
    once; their rows must be locked, and :meth:`BatchWrites.write` makes them)."""
    result = ReconcileResult()

    def write(row: Message, values: dict[str, Any]) -> bool:
        if batch is None:
            return _write(session, row, values, now)
        batch.updates.append((row, {**values, "updated_at": now}))
        return True

    rows = {(m.step_key, m.occurrence): m for m in existing}
    inserts: list[dict[str, Any]] = []
    wanted: set[tuple[str, str]] = set()
    for message in desired:
        key = (message.step_key, message.occurrence)
        wanted.add(key)
        row = rows.get(key)
        moved = row is not None and row.due_at != message.due_at
        target = target_for(
            message,
            enrollment_status=enrollment.status,
            enrolled_at=enrollment.created_at,
            reach=reach,
            now=now,
            already_due_ok=row is not None and row.status is MessageStatus.SCHEDULED and not moved,
        )
        if row is None:
            inserts.append(
                new_row(
                    message,
                    target,
                    enrollment_id=enrollment.id,
                    patient_id=enrollment.patient_id,
                    clinic_id=clinic_id,
                    now=now,
                    plan_version=enrollment.plan_version,
                )
            )
            result.inserted += 1
        elif row.status is MessageStatus.SCHEDULED:
            if target.reason in (DUE_BEFORE_ENROLMENT, DUE_IN_THE_PAST):
                target = Target(MessageStatus.SKIPPED, MOVED_INTO_THE_PAST)
            values = _plan_changes(row, message)
            if target.status is not MessageStatus.SCHEDULED:
                values.update(status=target.status, status_reason=target.reason)
                kind = "skipped" if target.status is MessageStatus.SKIPPED else "cancelled"
            elif moved:
                values.update(_FRESH, status_reason=None)  # e.g. no "quiet hours" deferral or retry from before
                kind = "moved"
            else:
                kind = "updated" if values else "unchanged"
            _count(result, kind if kind == "unchanged" or write(row, values) else "unchanged")
        elif target.status is MessageStatus.SCHEDULED and row.status in _REVIVABLE:
            values = {**_plan_changes(row, message), **_FRESH, "status": target.status, "status_reason": target.reason}
            _count(result, "revived" if write(row, values) else "unchanged")
        else:
            result.unchanged += 1
    for key, row in rows.items():
        if key in wanted:
            continue
        if is_welcome(row):
            _settle_welcome(write, row, enrollment.status, plan_status, reach, now, result)
            continue
        if row.status is MessageStatus.SCHEDULED:
            reason = _why_obsolete(row, enrollment.status, plan_status, appointment_status)
            values = {"status": MessageStatus.CANCELLED, "status_reason": reason}
            _count(result, "cancelled" if write(row, values) else "unchanged")
        else:
            result.unchanged += 1
    if batch is not None:
        batch.inserts.extend(inserts)
        return result
    insert_rows(session, inserts)
    session.flush()
    return result


@dataclass
class BatchWrites:
    """What :func:`apply_diff` would write for many enrollments, written at once by :meth:`write`."""

    updates: list[tuple[Message, dict[str, Any]]] = field(default_factory=list)
    inserts: list[dict[str, Any]] = field(default_factory=list)

    def write(self, session: Session, *, defer: bool = False) -> Callable[[], None] | None:
        """One statement per set of columns changed (PostgreSQL: an UPDATE from arrays; SQLite: an
        ``executemany``), then one bulk insert. The rows are locked (``FOR UPDATE``), so each still has the
        status read; the status stays in the WHERE all the same.

        ``defer`` (PostgreSQL): the largest UPDATE is sent last and not waited for; the function returned
        waits for it (raising its error), and must be called before the connection is used again. Meanwhile
        this process can work on something else (publishing plans its next chunk) while the server writes."""
        groups: dict[tuple[str, ...], list[tuple[Message, dict[str, Any]]]] = {}
        for row, values in self.updates:
            groups.setdefault(tuple(sorted(values)), []).append((row, values))
        table = Message.__table__
        assert isinstance(table, Table)
        connection = session.connection()
        postgresql = connection.dialect.name == "postgresql"
        last = max(groups, key=lambda names: len(groups[names])) if defer and postgresql and groups else None
        for names, members in groups.items():
            if names == last:
                continue
            if postgresql:
                _update_from_arrays(connection, table, names, members)
                continue
            statement = (
                update(table)
                .where(table.c.id == bindparam("row_id"), table.c.status == bindparam("row_status"))
                .values({name: bindparam(f"new_{name}") for name in names})
            )
            params_list = [
                {"row_id": row.id, "row_status": row.status, **{f"new_{name}": v for name, v in values.items()}}
                for row, values in members
            ]
            connection.execute(statement, params_list)
        for row, values in self.updates:
            if hasattr(row, "_sa_instance_state"):
                for name, value in values.items():
                    set_committed_value(row, name, value)
            else:  # a plain row read for the diff (engage.schedule.replan)
                row.__dict__.update(values)
        insert_rows(session, self.inserts)
        finish = _update_from_arrays(connection, table, last, groups[last], send_only=True) if last else None
        self.updates.clear()
        self.inserts.clear()
        return finish


def _update_from_arrays(
    connection: Any,
    table: Table,
    names: tuple[str, ...],
    members: list[tuple[Message, dict[str, Any]]],
    *,
    send_only: bool = False,
) -> Callable[[], None] | None:
    """One ``UPDATE message ... FROM unnest(<arrays>)`` for rows that get the same columns (PostgreSQL): one
    statement for thousands of rows, where an ``executemany`` runs one statement a row. Each array travels as
    one text (:func:`_array_literal`) and is cast to its column's type; a column every row gets the same value
    for (a moved row's fresh attempts, ``updated_at``) travels once, not as an array. The status read stays in
    the WHERE. ``send_only``: see :meth:`BatchWrites.write` (``defer``); returns the function that waits."""
    dialect = connection.dialect
    first = members[0][1]
    same = [name for name in names if all(values[name] == first[name] for _, values in members)]
    varying: list[tuple[str, list[Any]]] = [
        ("id", [row.id for row, _ in members]),
        ("status", [row.status for row, _ in members]),
        *((name, [values[name] for _, values in members]) for name in names if name not in same),
    ]
    params: list[str | None] = []

    def parameter(value: str | None) -> str:
        params.append(value)
        return f"${len(params)}" if send_only else f":p{len(params)}"

    sources, assignments = [], []
    for column, found in varying:
        sql_type = table.c[column].type.compile(dialect=dialect)
        literal = parameter(_array_literal([_as_text(value) for value in found]))
        sources.append(f"CAST(CAST({literal} AS text) AS {sql_type}[])")
        if column not in ("id", "status"):
            assignments.append(f"{column} = v.{column}")
    for column in same:
        sql_type = table.c[column].type.compile(dialect=dialect)
        assignments.append(f"{column} = CAST(CAST({parameter(_as_text(first[column]))} AS text) AS {sql_type})")
    sql = (
        f"UPDATE message AS m SET {', '.join(assignments)} FROM unnest({', '.join(sources)}) "
        f"AS v({', '.join(column for column, _ in varying)}) WHERE m.id = v.id AND m.status = v.status"
    )
    if not send_only:
        connection.execute(text(sql), {f"p{i}": value for i, value in enumerate(params, start=1)})
        return None
    return _send(connection, sql, params)


def _send(connection: Any, sql: str, params: list[str | None]) -> Callable[[], None]:
    """Send one statement on the connection (psycopg's libpq connection) without waiting for its result;
    return the function that waits for it and raises its error."""
    pgconn = connection.connection.driver_connection.pgconn
    mode = pgconn.nonblocking
    pgconn.nonblocking = 0  # psycopg keeps libpq non-blocking; blocking, the send returns once all is sent
    try:
        pgconn.send_query_params(sql.encode(), [None if p is None else p.encode() for p in params])
    finally:
        pgconn.nonblocking = mode

    def finish() -> None:
        error = None
        pgconn.nonblocking = 0
        try:
            while (result := pgconn.get_result()) is not None:
                if result.status not in (ExecStatus.COMMAND_OK, ExecStatus.TUPLES_OK) and error is None:
                    error = result.error_message.decode(errors="replace")
        finally:
            pgconn.nonblocking = mode
        if error is not None:
            raise OperationalError("UPDATE message (re-planned rows)", None, DatabaseError(error))

    return finish


def _array_literal(values: list[str | None]) -> str:
    """A PostgreSQL array literal of ``values`` (each quoted, None as NULL): one string parameter, where psycopg
    would dump a list of tens of thousands of strings one element at a time in Python."""
    return (
        "{"
        + ",".join(
            "NULL" if value is None else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values
        )
        + "}"
    )


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _settle_welcome(
    write: Callable[[Message, dict[str, Any]], bool],
    row: Message,
    enrollment_status: EnrollmentStatus,
    plan_status: PlanStatus,
    reach: Mapping[Channel, str | None],
    now: datetime,
    result: ReconcileResult,
) -> None:
    """The welcome SMS (engage.schedule.welcome) is not planned, so it is never moved: an ended enrollment
    or plan cancels it, a pause cancels it until the resume brings it back (due at once: the send-time
    check holds it through quiet hours), an opt-out (or a lost phone) skips it. Otherwise it is left alone."""
    values: dict[str, Any] | None = None
    if row.status is MessageStatus.SCHEDULED:
        if enrollment_status not in PLANNING_ACTIVE or plan_status is PlanStatus.CANCELLED:
            values = {
                "status": MessageStatus.CANCELLED,
                "status_reason": _why_obsolete(row, enrollment_status, plan_status, {}),
            }
        elif enrollment_status is EnrollmentStatus.PAUSED:
            values = {"status": MessageStatus.CANCELLED, "status_reason": PAUSED}
        elif reach.get(Channel.SMS):
            values = {"status": MessageStatus.SKIPPED, "status_reason": reach.get(Channel.SMS)}
    elif (
        row.status is MessageStatus.CANCELLED
        and row.status_reason == PAUSED
        and enrollment_status is EnrollmentStatus.ACTIVE
        and plan_status is not PlanStatus.CANCELLED
        and not reach.get(Channel.SMS)
    ):
        values = {**_FRESH, "status": MessageStatus.SCHEDULED, "status_reason": None, "due_at": max(row.due_at, now)}
    if values is None:
        result.unchanged += 1
        return
    kinds = {MessageStatus.CANCELLED: "cancelled", MessageStatus.SKIPPED: "skipped", MessageStatus.SCHEDULED: "revived"}
    _count(result, kinds[values["status"]] if write(row, values) else "unchanged")


def _count(result: ReconcileResult, kind: str) -> None:
    setattr(result, kind, getattr(result, kind) + 1)


def _plan_changes(row: Message, message: DesiredMessage) -> dict[str, Any]:
    """The planned fields of ``row`` that differ from ``message`` (written out: publishing asks this of every
    pending message of a clinic)."""
    changes: dict[str, Any] = {}
    if row.due_at != message.due_at:
        changes["due_at"] = message.due_at
    if row.appointment_id != message.appointment_id:
        changes["appointment_id"] = message.appointment_id
    if row.channel != message.channel:
        changes["channel"] = message.channel
    if row.template != message.template:
        changes["template"] = message.template
    if row.context != message.context:
        changes["context"] = message.context
    return changes


def _write(session: Session, row: Message, values: dict[str, Any], now: datetime) -> bool:
    """Write ``values`` to ``row`` only if it still has the status this reconcile read; whether it did.

    The row lock makes a miss impossible on PostgreSQL (and SQLite's write lock there), so a
    miss means some writer got round the lock: the row is left as that writer made it.
    """
    values = {**values, "updated_at": now}
    statement = (
        update(Message)
        .where(Message.id == row.id, Message.status == row.status)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    outcome = session.execute(statement)
    assert isinstance(outcome, CursorResult)
    if outcome.rowcount != 1:
        log.warning(
            "message %d changed status while being reconciled; left as it is", row.id, extra={"message_id": row.id}
        )
        session.expire(row)
        return False
    for name, value in values.items():  # keep the session's copy true without a second UPDATE at flush
        set_committed_value(row, name, value)
    return True


def _why_obsolete(
    row: Message,
    enrollment_status: EnrollmentStatus,
    plan_status: PlanStatus,
    appointment_status: Mapping[int, AppointmentStatus],
) -> str:
    if enrollment_status not in PLANNING_ACTIVE:
        return f"enrollment {enrollment_status.value}"
    if plan_status is PlanStatus.CANCELLED:
        return "plan cancelled"
    status = appointment_status.get(row.appointment_id) if row.appointment_id is not None else None
    if status is AppointmentStatus.CANCELLED:
        return "appointment cancelled"
    if status is AppointmentStatus.NO_SHOW:
        return "appointment no-show"
    return "no longer planned"


class _LazyReach(dict[Channel, str | None]):
    """Asks ``engage.conversation.consent`` once per channel, and only for channels a message uses."""

    def __init__(self, ask: Callable[[Channel], str | None]) -> None:
        super().__init__()
        self._ask = ask

    def __missing__(self, channel: Channel) -> str | None:
        self[channel] = value = self._ask(channel)
        return value

    def get(self, channel: Channel, default: str | None = None) -> str | None:  # type: ignore[override]
        return self[channel]


def plan_facts(plan: TreatmentPlan) -> PlanFacts:
    return PlanFacts(
        id=plan.id, status=plan.status, planned_sessions=plan.planned_sessions, has_exercises=bool(plan.exercises)
    )


def appointment_facts(appointment: Appointment) -> AppointmentFacts:
    return AppointmentFacts(
        appointment.id, appointment.start_at, appointment.end_at, appointment.status, appointment.created_at
    )


def policy_for(patient: Patient, clinic: Clinic) -> Policy:
    """The patient's time zone (the clinic's when they have none), the clinic's quiet hours, frequency
    caps, steps turned off and email preference, and which contact details the patient has.

    A phone the patient opted out of texts on counts as no phone, so a step that may go by email
    (aftercare, the pain prompt) reaches them by email instead of being skipped.
    """
    session = object_session(patient)
    texts_off = (
        session is not None
        and bool(patient.phone)
        and current_consent(session, patient.id, Channel.SMS) is ConsentState.OPTED_OUT
    )
    return policy_from(patient, clinic, texts_off=texts_off)


def policy_from(patient: Patient, clinic: Clinic, *, texts_off: bool) -> Policy:
    """:func:`policy_for` with the patient's SMS opt-out already known (``texts_off``: a phone opted out)."""
    per_day, per_week = sms_caps(clinic)
    return Policy(
        timezone=patient.timezone or clinic.timezone,
        quiet_hours=dict(clinic.quiet_hours or {}),
        sms_per_day=per_day,
        sms_per_week=per_week,
        steps_off=frozenset(clinic.steps_off or ()),
        has_phone=bool(patient.phone) and not patient.phone_invalid and not texts_off,
        has_email=bool(patient.email),
        prefers_email=bool(clinic.prefers_email),
    )


def sms_history(
    session: Session, patient_id: int, enrollment_id: int, *, leave_out: int | None = None
) -> tuple[SentSms, ...]:
    """The patient's SMS already handed to a provider (any enrollment), for the frequency caps;
    ``leave_out``: a message id not to count (the one a send-time check is asking about)."""
    query = select(Message.id, Message.enrollment_id, Message.step_key, Message.occurrence, Message.due_at).where(
        Message.patient_id == patient_id,
        Message.channel == Channel.SMS,
        Message.status.in_(HANDED_OVER_STATUSES),
        Message.step_key != WELCOME_STEP,  # the opt-in confirmation is not counted against the caps
    )
    return tuple(
        SentSms(due_at, (step_key, occurrence) if owner == enrollment_id else None)
        for message_id, owner, step_key, occurrence, due_at in session.execute(query)
        if message_id != leave_out
    )
