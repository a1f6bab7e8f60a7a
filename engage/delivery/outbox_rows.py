"""The conditional UPDATEs that move one outbox row between states, for :func:`engage.delivery.send.send_one`.

Every write names the state it expects (``queued``, ``sending``) and, once a
worker holds a row, the attempt number it took it with; zero rows changed means
another worker, the reaper or a status callback got there first. Each function
either opens and commits its own transaction or works inside the caller's.
:func:`write_with_retries` commits a write that must not be lost (a provider's
answer) through transient database errors.

Logs carry message ids and error types only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, literal, null, or_, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from engage.db import session_scope
from engage.records.models import Channel, Message, MessageStatus, Patient
from engage.records.outgoing_webhooks import EventType, emit, owed_in_same_statement

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Taken:
    """A row this worker moved to ``sending``: its attempt number fences every later write of this worker."""

    attempt: int
    channel: Channel


def start_sending(message_id: int, now: datetime) -> Taken | None:
    """``queued -> sending`` (one more attempt), committed. None when the row was not ``queued``."""
    with session_scope() as session:
        row = session.execute(_take(message_id, now).returning(Message.attempts, Message.channel)).one_or_none()
        return Taken(attempt=row.attempts, channel=row.channel) if row is not None else None


def take(session: Session, message_id: int, now: datetime) -> int | None:
    """``queued -> sending`` (one more attempt) in the caller's transaction; the attempt number, or None."""
    return session.execute(_TAKE, {"message_id": message_id, "now": now}).scalar()


def _table() -> Table:
    return cast(Table, Message.__table__)


# The send path's two per-message writes before the provider call, built once with bound parameters (Core,
# not ORM-enabled UPDATEs): compiled once per process and found in the cache by identity.
_TAKE = (
    update(_table())
    .where(_table().c.id == bindparam("message_id"), _table().c.status == MessageStatus.QUEUED)
    .values(
        status=MessageStatus.SENDING,
        sending_at=bindparam("now"),
        handed_at=None,
        attempts=_table().c.attempts + 1,
        updated_at=bindparam("now"),
    )
    .returning(_table().c.attempts)
)
_HAND_OVER = (
    update(_table())
    .where(
        _table().c.id == bindparam("message_id"),
        _table().c.status == MessageStatus.SENDING,
        _table().c.attempts == bindparam("attempt"),
        _table().c.handed_at.is_(None),
    )
    .values(handed_at=bindparam("now"), updated_at=bindparam("now"))
)


# The same two writes for a whole send batch: one round trip each, whatever the batch's size.
_TAKE_MANY = (
    update(_table())
    .where(_table().c.id.in_(bindparam("ids", expanding=True)), _table().c.status == MessageStatus.QUEUED)
    .values(
        status=MessageStatus.SENDING,
        sending_at=bindparam("now"),
        handed_at=None,
        attempts=_table().c.attempts + 1,
        updated_at=bindparam("now"),
    )
    .returning(_table().c.id, _table().c.attempts)
)
_HAND_OVER_MANY = (
    update(_table())
    .where(
        _table().c.id.in_(bindparam("ids", expanding=True)),
        _table().c.status == MessageStatus.SENDING,
        _table().c.handed_at.is_(None),
    )
    .values(handed_at=bindparam("now"), updated_at=bindparam("now"))
    .returning(_table().c.id, _table().c.attempts)
)


def take_many(session: Session, message_ids: Sequence[int], now: datetime) -> dict[int, int]:
    """:func:`take` for many rows in one statement: ``{id: attempt}`` of those that were ``queued``."""
    if not message_ids:
        return {}
    rows = session.execute(_TAKE_MANY, {"ids": list(message_ids), "now": now}).all()
    return {message_id: attempt for message_id, attempt in rows}


def hand_over_many(session: Session, attempts: Mapping[int, int], now: datetime) -> set[int]:
    """:func:`hand_over` for many rows (``{id: attempt}``) in one statement; the ids that are still ours."""
    if not attempts:
        return set()
    rows = session.execute(_HAND_OVER_MANY, {"ids": list(attempts), "now": now}).all()
    return {message_id for message_id, attempt in rows if attempts.get(message_id) == attempt}


def _take(message_id: int, now: datetime) -> Any:
    return (
        update(Message)
        .where(Message.id == message_id, Message.status == MessageStatus.QUEUED)
        .values(
            status=MessageStatus.SENDING, sending_at=now, handed_at=None, attempts=Message.attempts + 1, updated_at=now
        )
        .execution_options(synchronize_session=False)
    )


def postpone(session: Session, message_id: int, now: datetime, *, next_attempt_at: datetime, reason: str) -> bool:
    """A ``queued`` row back to ``scheduled`` until ``next_attempt_at`` (no attempt used); False if not queued."""
    result = session.execute(
        update(Message)
        .where(Message.id == message_id, Message.status == MessageStatus.QUEUED)
        .values(status=MessageStatus.SCHEDULED, status_reason=reason, next_attempt_at=next_attempt_at, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def hand_over(session: Session, message_id: int, now: datetime, attempt: int) -> bool:
    """Mark our ``sending`` row as about to reach the provider (``handed_at``); False when it is no longer ours.

    Committed before the provider call: from then on a dead worker's row is
    ``unknown`` to the reaper, not requeued. The attempt number fences out a
    worker whose row the reaper already took back and gave to another.
    """
    result = session.execute(_HAND_OVER, {"message_id": message_id, "attempt": attempt, "now": now})
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish(session: Session, message_id: int, now: datetime, *, attempt: int | None = None, **values: Any) -> bool:
    """Move our ``sending`` row to its next state; False when someone else moved it first.

    ``attempt`` (from :func:`start_sending`) makes sure the row is still this
    worker's attempt, not one the reaper requeued and another worker took.
    """
    stmt = update(Message).where(Message.id == message_id, Message.status == MessageStatus.SENDING)
    if attempt is not None:
        stmt = stmt.where(Message.attempts == attempt)
    result = session.execute(stmt.values(updated_at=now, **values).execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release(message_id: int, now: datetime, *, attempt: int | None = None) -> None:
    """``sending -> queued`` without counting the attempt (engage, not the message, was at fault)."""
    with session_scope() as session:
        finish(
            session,
            message_id,
            now,
            attempt=attempt,
            status=MessageStatus.QUEUED,
            attempts=Message.attempts - 1,
            sending_at=None,
            handed_at=None,
        )


def record_accepted(
    session: Session,
    message_id: int,
    now: datetime,
    *,
    provider: str,
    provider_message_id: str,
    segments: int | None,
    emit_sent: bool = False,
) -> None:
    """Store what the provider accepted. A status callback may have got there first: it keeps its status and error.

    ``emit_sent``: also owe the ``message.sent`` webhook event (as :func:`emit` would), in the same statement on
    PostgreSQL (one round trip a message fewer).
    """
    params = {
        "message_id": message_id,
        "provider": provider,
        "provider_message_id": provider_message_id,
        "segments": segments,
        "now": now,
    }
    if emit_sent and session.get_bind().dialect.name == "postgresql":
        session.execute(_ACCEPTED_AND_OWED, params)
        return
    session.execute(_ACCEPTED, params)
    if emit_sent:
        emit(session, EventType.MESSAGE_SENT, [message_id])


def _accepted_statement() -> Any:
    """``record_accepted``'s UPDATE, built once: every value a bound parameter, so SQLAlchemy compiles it once
    and finds it in its cache by identity (rebuilding the CASEs per call made its cache key the top cost)."""
    table = _table()
    # Two comparisons, not IN (…): an IN list is expanded at every execution and cannot be executemany'd.
    ours = or_(table.c.status == MessageStatus.SENDING, table.c.status == MessageStatus.UNKNOWN)

    def unless_called_back(value: Any, column: Any) -> Any:
        return case((ours, value), else_=column)

    return (
        update(table)
        .where(table.c.id == bindparam("message_id"))
        .values(
            provider=bindparam("provider"),
            provider_message_id=bindparam("provider_message_id"),
            segments=bindparam("segments"),
            sent_at=bindparam("now"),
            updated_at=bindparam("now"),
            next_attempt_at=None,
            last_error=unless_called_back(null(), table.c.last_error),
            error_code=unless_called_back(null(), table.c.error_code),
            status=unless_called_back(literal(MessageStatus.SENT.value), table.c.status),
            status_reason=unless_called_back(null(), table.c.status_reason),
        )
    )


_ACCEPTED = _accepted_statement()


def _accepted_and_owed_statement() -> Any:
    """PostgreSQL: ``record_accepted``'s UPDATE and ``emit``'s INSERT of ``message.sent`` as one statement."""
    table = _table()
    sent = _ACCEPTED.returning(table.c.id, table.c.patient_id).cte("sent")
    about = select(sent.c.id, Patient.clinic_id).join(Patient, Patient.id == sent.c.patient_id)
    return owed_in_same_statement(EventType.MESSAGE_SENT, sent, about)


_ACCEPTED_AND_OWED = _accepted_and_owed_statement()


@dataclass(frozen=True)
class AcceptedRow:
    """One provider acceptance to store with its batch (:func:`record_accepted_many`)."""

    message_id: int
    provider: str
    provider_message_id: str
    segments: int | None


def record_accepted_many(session: Session, rows: Sequence[AcceptedRow], now: datetime) -> None:
    """:func:`record_accepted` (with ``emit_sent``) for a batch: one executemany (one pipelined round trip on
    PostgreSQL) and one INSERT of the ``message.sent`` events, whatever the batch's size."""
    if not rows:
        return
    session.execute(
        _ACCEPTED,
        [
            {
                "message_id": row.message_id,
                "provider": row.provider,
                "provider_message_id": row.provider_message_id,
                "segments": row.segments,
                "now": now,
            }
            for row in rows
        ],
    )
    emit(session, EventType.MESSAGE_SENT, [row.message_id for row in rows])


def write_with_retries(work: Callable[[Session], None], *, tries: int = 6, pause: float = 0.2) -> None:
    """Commit ``work`` in a transaction, retrying on database errors (a locked SQLite, a dropped connection).

    Used for writing a provider's answer: the message is out, so losing that
    record would make the reaper flag a delivered message ``unknown``.
    """
    for attempt in range(1, tries + 1):
        try:
            with session_scope() as session:
                work(session)
            return
        except (OperationalError, InterfaceError):
            if attempt == tries:
                raise
            log.warning("database error writing a send result; retry %d of %d", attempt, tries - 1)
            time.sleep(pause * 2 ** (attempt - 1))
