"""Marking stored episode facts stale whenever what they are computed from is written, in the same transaction.

An enrollment's stored facts (:class:`~engage.records.models.EpisodeFact`) come from its plan's visits and its
patient's scores. Every flush that adds, changes or removes an :class:`Outcome` or an :class:`Appointment`
(whichever code path wrote it: SMS replies, the intake page, the desk, the API, a sync; mapper events, so
flushes of other records pay nothing), and every ORM bulk ``insert(...)`` of them, bumps the ``version`` of
the facts of the enrollments concerned, creating the row if it is missing. The reader
(:mod:`engage.outcomes.stored_facts`) stores what it computed only under the version it read, so a write that
commits while it computes leaves the row stale rather than wrong: its ``UPDATE ... WHERE version = :read``
then matches nothing (on PostgreSQL it also skips rows a writer holds locked rather than wait for them).

An ``update(...)`` or ``delete(...)`` of those records run through a session (ORM or Core; none exists today)
names no rows here: it marks every stored fact stale. Writes that bypass the session (a connection of their
own, raw SQL text) must call :func:`mark_patients_stale` or :func:`mark_plans_stale` themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, event, inspect, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from engage.records.models import Appointment, Enrollment, EpisodeFact, Outcome

#: The appointment attributes the facts read (start, end, status: which visits count; who treated).
_VISIT_FIELDS = ("plan_id", "start_at", "end_at", "status", "practitioner_id")
_SCORE_FIELDS = ("patient_id", "score", "recorded_at", "measure")


def mark_stale(connection: Connection, *, patient_ids: Iterable[int] = (), plan_ids: Iterable[int] = ()) -> None:
    """Bump the facts' version of every enrollment of ``patient_ids`` or of ``plan_ids`` (a row is created for
    an enrollment that has none, so a reader computing it right now cannot store what it read before)."""
    patients, plans = sorted(set(patient_ids)), sorted(set(plan_ids))
    if not patients and not plans:
        return
    which = []
    if patients:
        which.append(Enrollment.patient_id.in_(patients))
    if plans:
        which.append(Enrollment.plan_id.in_(plans))
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    table = EpisodeFact.__table__
    # Enrollment order: concurrent writers lock the rows in the same order (no deadlock between two of them).
    statement = dialect.insert(table).from_select(
        ["enrollment_id", "version"],
        select(Enrollment.id, literal(1)).where(or_(*which)).order_by(Enrollment.id),
    )
    connection.execute(
        statement.on_conflict_do_update(index_elements=[table.c.enrollment_id], set_={"version": table.c.version + 1})
    )


def mark_patients_stale(session: Session, patient_ids: Iterable[int]) -> None:
    mark_stale(session.connection(), patient_ids=patient_ids)


def mark_plans_stale(session: Session, plan_ids: Iterable[int]) -> None:
    mark_stale(session.connection(), plan_ids=plan_ids)


def _ids(target: Any, field: str, *, all_changes: bool) -> list[int]:
    """The value of ``target.field`` now and, when it changed, before (a score or visit that moved away)."""
    history = inspect(target).attrs[field].history
    values = [*history.added, *history.deleted] if all_changes else []
    return [v for v in (*values, getattr(target, field)) if v is not None]


def _written(fields: tuple[str, ...], owner: str, key: str, *, update: bool) -> Any:
    """A mapper event (insert, update or delete of one record) collecting whose facts go stale in the session's
    ``info[key]``; an update touching none of ``fields`` (a visit confirmed, say) changes no facts."""

    def listener(_mapper: Any, _connection: Connection, target: Any) -> None:
        state = inspect(target)
        if update and not any(state.attrs[name].history.has_changes() for name in fields):
            return
        session = state.session
        if session is not None:
            session.info.setdefault(key, set()).update(_ids(target, owner, all_changes=True))

    return listener


def _after_flush(session: Session, _context: UOWTransaction) -> None:
    patients: set[int] = session.info.pop("stale_patients", set())
    plans: set[int] = session.info.pop("stale_plans", set())
    if patients or plans:
        mark_stale(session.connection(), patient_ids=patients, plan_ids=plans)


#: The tables whose Core statements, run through a session, are read here as their entity's.
_ENTITY_OF: dict[Any, type] = {Outcome.__table__: Outcome, Appointment.__table__: Appointment}


def _bulk(state: ORMExecuteState) -> None:
    """Statements run through a session that write scores or visits without loading them (``insert(Appointment)``
    in a sync; Core statements on their tables too)."""
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    # An ORM statement names its entity; a Core one (``delete(Outcome.__table__)``) only its table.
    entity = mapper.class_ if mapper is not None else _ENTITY_OF.get(getattr(state.statement, "table", None))
    if entity not in (Outcome, Appointment):
        return
    if state.is_insert:
        params = state.parameters
        rows: list[dict[str, Any]] = (
            [params] if isinstance(params, dict) else list(params or ())  # type: ignore[arg-type]
        )
        values = getattr(state.statement, "_values", None) or {}
        key = "patient_id" if entity is Outcome else "plan_id"
        ids = [row[key] for row in rows if row.get(key) is not None]
        if not rows and values:  # insert(...).values(...) instead of a list of parameters
            ids = [getattr(v, "value", None) for k, v in values.items() if getattr(k, "key", k) == key]
        if entity is Outcome:
            mark_stale(state.session.connection(), patient_ids=[i for i in ids if i is not None])
        else:
            mark_stale(state.session.connection(), plan_ids=[i for i in ids if i is not None])
        return
    # An update or delete by criteria: which rows it touches is not known here, so every fact is stale.
    state.session.connection().execute(update(EpisodeFact).values(version=EpisodeFact.version + 1))


# Mapper events: they run only when a score or a visit is written, so other flushes (the send path's) pay nothing.
for _event in ("after_insert", "after_update", "after_delete"):
    _update = _event == "after_update"
    event.listen(Outcome, _event, _written(_SCORE_FIELDS, "patient_id", "stale_patients", update=_update))
    event.listen(Appointment, _event, _written(_VISIT_FIELDS, "plan_id", "stale_plans", update=_update))
event.listen(Session, "after_flush", _after_flush)
event.listen(Session, "do_orm_execute", _bulk)
