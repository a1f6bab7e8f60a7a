"""Outgoing webhooks: a clinic's endpoints, and the outbox of events engage owes them.

Events are written by :func:`emit` in the same transaction as the change they
report (a message sent, a reply stored, a consent event appended), so an event
exists exactly when its change was committed: the transactional outbox. One row
per (endpoint, event id); the event id is derived from the event's type and the
row it is about (``evt_message_sent_812``), so a second emission of the same
event, from a racing status callback say, inserts nothing. Delivery lives in
:mod:`engage.integrations.deliver`; what each event says, in
:mod:`engage.integrations.payloads`.

A clinic without endpoints pays one small ``INSERT … SELECT`` that inserts nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from engage.clock import utcnow
from engage.records.models import (
    Base,
    ConsentEvent,
    InboundMessage,
    Message,
    Outcome,
    Patient,
    _enum,
)


class EventType(enum.StrEnum):
    MESSAGE_SENT = "message.sent"  # the provider accepted it
    MESSAGE_FAILED = "message.failed"  # refused for good, undelivered or bounced
    REPLY_RECEIVED = "reply.received"  # an SMS reply stored (its kind, never its words)
    OUTCOME_RECORDED = "outcome.recorded"  # a pain score, from a reply, a page or staff
    CONSENT_CHANGED = "consent.changed"  # opted in or out of a channel


class EventStatus(enum.StrEnum):
    PENDING = "pending"  # to be posted at next_attempt_at
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # no 2xx after every attempt
    DROPPED = "dropped"  # the endpoint was removed before it got the event


class WebhookEndpoint(Base):
    """A URL of the clinic's that receives signed JSON events (Standard Webhooks headers)."""

    __tablename__ = "webhook_endpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    label: Mapped[str] = mapped_column(String(100), default="")
    #: ``whsec_`` + base64 key. Kept readable: signing needs the key itself, not a hash of it.
    secret: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]


class WebhookEvent(Base):
    """One event owed to one endpoint, and how its delivery went."""

    __tablename__ = "webhook_event"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_event_endpoint_event"),
        Index("ix_webhook_event_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoint.id"))
    event_id: Mapped[str] = mapped_column(String(80))
    type: Mapped[EventType] = mapped_column(_enum(EventType))
    subject_id: Mapped[int] = mapped_column(Integer)  # the message, reply, outcome or consent event
    occurred_at: Mapped[datetime]
    status: Mapped[EventStatus] = mapped_column(_enum(EventStatus), default=EventStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)  # the endpoint's HTTP answer, if any
    last_error: Mapped[str | None] = mapped_column(String(200))  # "timeout", "HTTP 500", "connection refused"
    delivered_at: Mapped[datetime | None]


_IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)


def event_id(event_type: EventType, subject_id: int) -> str:
    """The event's id, the same for every endpoint and every emission: receivers drop repeats by it."""
    return f"{_id_prefix(event_type)}{subject_id}"


def _id_prefix(event_type: EventType) -> str:
    return f"evt_{event_type.value.replace('.', '_')}_"


_MESSAGES = select(Message.id, Patient.clinic_id).join(Patient).where(Message.id.in_(_IDS))
#: For each event type: a query of (subject id, its clinic id) for the ``ids`` bound at execution.
_SUBJECTS: dict[EventType, Any] = {
    EventType.MESSAGE_SENT: _MESSAGES,
    EventType.MESSAGE_FAILED: _MESSAGES,
    EventType.REPLY_RECEIVED: select(InboundMessage.id, InboundMessage.clinic_id).where(InboundMessage.id.in_(_IDS)),
    EventType.OUTCOME_RECORDED: select(Outcome.id, Patient.clinic_id).join(Patient).where(Outcome.id.in_(_IDS)),
    EventType.CONSENT_CHANGED: select(ConsentEvent.id, Patient.clinic_id)
    .join(Patient)
    .where(ConsentEvent.id.in_(_IDS)),
}


def _owed(event_type: EventType, dialect: str, about: Any = None) -> Any:
    """``INSERT … SELECT``: one pending event per (subject, active endpoint of its clinic), repeats skipped.

    ``about``: a query of (subject id, its clinic id); default the subjects whose ids are bound as ``ids``.
    """
    subjects = (_SUBJECTS[event_type] if about is None else about).subquery()
    now = bindparam("now", type_=WebhookEvent.occurred_at.type)
    rows = select(
        WebhookEndpoint.id,
        literal(_id_prefix(event_type)) + subjects.c.id.cast(String),
        literal(event_type.value),
        subjects.c.id,
        now,
        literal(EventStatus.PENDING.value),
        literal(0),
        now,
    ).join(WebhookEndpoint, (WebhookEndpoint.clinic_id == subjects.c.clinic_id) & WebhookEndpoint.active)
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return (
        insert(cast(Table, WebhookEvent.__table__))  # Core: an ORM insert given parameters would go "bulk"
        .from_select(
            ["endpoint_id", "event_id", "type", "subject_id", "occurred_at", "status", "attempts", "next_attempt_at"],
            rows,
        )
        .on_conflict_do_nothing(index_elements=["endpoint_id", "event_id"])
    )


#: Built once: the send path emits for every message, and building the statement costs more than running it.
_STATEMENTS = {(t, d): _owed(t, d) for t in EventType for d in ("postgresql", "sqlite")}


def owed_in_same_statement(event_type: EventType, changed: Any, about: Any) -> Any:
    """PostgreSQL: ``WITH changed AS (UPDATE … RETURNING …) INSERT …`` owing ``event_type`` about the rows
    ``changed`` (a data-modifying CTE) changes; ``about`` selects (subject id, its clinic id) from it. Like
    :func:`emit` after the UPDATE, in one round trip. Build it once (module level)."""
    return _owed(event_type, "postgresql", about).add_cte(changed)


def emit(session: Session, event_type: EventType, subject_ids: Sequence[int]) -> None:
    """Owe ``event_type`` about each of ``subject_ids`` to every active endpoint of the subject's clinic.

    Works in the caller's transaction (flush the subject rows first). Emitting an event
    that was emitted before inserts nothing. One statement, whatever the number of ids.
    """
    ids = sorted(set(subject_ids))
    if ids:
        dialect = "postgresql" if session.get_bind().dialect.name == "postgresql" else "sqlite"
        session.execute(_STATEMENTS[event_type, dialect], {"ids": ids, "now": utcnow()})
