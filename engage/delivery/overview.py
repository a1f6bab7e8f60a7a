"""What staff see of the outbox: the Today page's counts and "needs attention" lists, and the message list
with its filters and CSV export. All reads, all scoped to one clinic."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Executable, Select, String, bindparam, cast, func, literal, select, union_all
from sqlalchemy.orm import Session, contains_eager

from engage.clock import utcnow
from engage.conversation.inbox import inbox, waiting_count
from engage.errors import InvalidInput
from engage.records.models import (
    Appointment,
    Channel,
    Clinic,
    ConsentEvent,
    ConsentState,
    Enrollment,
    InboundMessage,
    Message,
    MessageStatus,
    Patient,
    TreatmentPlan,
)

#: Shown on Today until a person settles them (``engage.delivery.resolve``).
NEEDS_RESOLVING = (MessageStatus.FAILED, MessageStatus.UNKNOWN)
BOUNCED = (MessageStatus.BOUNCED, MessageStatus.UNDELIVERED)
RECENT = timedelta(days=7)
LIST_LIMIT = 50


#: How many of the replies waiting for a person Today names (the inbox has them all).
REPLIES_SHOWN = 10


@dataclass(frozen=True, slots=True)
class Listed:
    """A message in one of Today's lists: the columns the page shows, read without loading the outbox row."""

    id: int
    patient_id: int
    first_name: str
    last_name: str
    channel: Channel
    template: str
    status: MessageStatus
    status_reason: str | None
    last_error: str | None
    due_at: datetime
    updated_at: datetime


@dataclass
class Today:
    """The Today page's facts for one clinic at ``now``."""

    now: datetime
    due_next_24h: dict[str, int]
    last_24h: dict[str, int]
    needs_resolving: list[Listed]
    needs_resolving_total: int
    flagged_replies: list[InboundMessage]  # the first REPLIES_SHOWN, in the inbox's order
    flagged_total: int
    bounced: list[Listed] = field(default_factory=list)
    invalid_numbers: list[Patient] = field(default_factory=list)
    opt_outs: list[tuple[ConsentEvent, Patient]] = field(default_factory=list)


def _clinic_messages(clinic_id: int) -> Select[Message]:
    return (
        select(Message)
        .join(Patient, Patient.id == Message.patient_id)
        .where(Patient.clinic_id == clinic_id)
        .options(contains_eager(Message.patient))
    )


_RECENT_STATUSES = (MessageStatus.SENT, MessageStatus.DELIVERED, *NEEDS_RESOLVING, *BOUNCED, MessageStatus.SKIPPED)


@lru_cache(maxsize=1)
def _counts_statement() -> Executable:
    """Today's counts in one statement of three index-only scans of ``message`` by clinic (no join: the clinic is
    on the message): ``("due", channel, n)`` scheduled in the next 24 h, ``("recent", status, n)`` changed in the
    last 24 h, ``("resolving", "", n)`` failed or unknown at any time. Built once, parameters bound per call."""
    in_clinic = Message.clinic_id == bindparam("clinic_id")
    due = (
        select(literal("due").label("kind"), cast(Message.channel, String).label("key"), func.count().label("n"))
        .where(
            in_clinic,
            Message.status == MessageStatus.SCHEDULED,
            Message.due_at >= bindparam("now"),
            Message.due_at < bindparam("due_before"),
        )
        .group_by(Message.channel)
    )
    recent = (
        select(literal("recent"), cast(Message.status, String), func.count())
        .where(in_clinic, Message.status.in_(_RECENT_STATUSES), Message.updated_at >= bindparam("changed_since"))
        .group_by(Message.status)
    )
    resolving = select(literal("resolving"), literal(""), func.count()).where(
        in_clinic, Message.status.in_(NEEDS_RESOLVING)
    )
    return union_all(due, recent, resolving)


def _listed(session: Session, where: Any, by: str, *, newest_first: bool = False) -> list[Listed]:
    """The first :data:`LIST_LIMIT` of the clinic's messages ``where`` by the column ``by`` (then id), with their
    patient's name.

    The messages are chosen first by id (a subquery the clinic's index answers alone), then read with their
    patients by id: joined before the limit, the planner would merge the clinic's patients with the messages
    of all of them, and read every matching row to sort them."""
    column = Message.__table__.c[by]
    first = (
        select(Message.id.label("id"), column.label("by"))
        .where(*where)
        .order_by(*_order(column, Message.id, newest_first))
        .limit(LIST_LIMIT)
        .subquery()
    )
    rows = session.execute(
        select(
            Message.id,
            Message.patient_id,
            Patient.first_name,
            Patient.last_name,
            Message.channel,
            Message.template,
            Message.status,
            Message.status_reason,
            Message.last_error,
            Message.due_at,
            Message.updated_at,
        )
        .select_from(first)
        .join(Message, Message.id == first.c.id)
        .join(Patient, Patient.id == Message.patient_id)
        .order_by(*_order(first.c.by, first.c.id, newest_first))
    )
    return [Listed(*row) for row in rows]


def _order(by: Any, tie: Any, newest_first: bool) -> tuple[Any, Any]:
    return (by.desc(), tie.desc()) if newest_first else (by, tie)


def today(session: Session, clinic_id: int, now: datetime | None = None, *, waiting: int | None = None) -> Today:
    """Due in the next 24 h by channel; sent, delivered, failed (and the like) in the last 24 h; and what needs a
    person: failed and unknown messages, flagged replies, bounces and invalid numbers, opt-outs of the last week.

    ``waiting``: how many replies wait for a person, when the caller counted them already (every staff page
    does, for the menu), else counted here."""
    now = now or utcnow()
    due: dict[str, int] = {}
    recent: dict[str, int] = {}
    resolving_total = 0
    params = {
        "clinic_id": clinic_id,
        "now": now,
        "due_before": now + timedelta(hours=24),
        "changed_since": now - timedelta(hours=24),
    }
    for kind, key, n in session.execute(_counts_statement(), params):
        if kind == "due":
            due[key] = n
        elif kind == "recent":
            recent[key] = n
        else:
            resolving_total = n
    in_clinic = Message.clinic_id == clinic_id
    resolving = _listed(session, (in_clinic, Message.status.in_(NEEDS_RESOLVING)), "due_at")
    bounced = _listed(
        session,
        (in_clinic, Message.status.in_(BOUNCED), Message.updated_at >= now - RECENT),
        "updated_at",
        newest_first=True,
    )
    patient_in_clinic = Patient.clinic_id == clinic_id
    invalid = list(
        session.scalars(
            select(Patient)
            .where(patient_in_clinic, Patient.phone_invalid)
            .order_by(Patient.last_name)
            .limit(LIST_LIMIT)
        )
    )
    opt_outs = [
        (event, patient)
        for event, patient in session.execute(
            select(ConsentEvent, Patient)
            .join(Patient, Patient.id == ConsentEvent.patient_id)
            .where(patient_in_clinic, ConsentEvent.state == ConsentState.OPTED_OUT, ConsentEvent.at >= now - RECENT)
            .order_by(ConsentEvent.at.desc())
            .limit(LIST_LIMIT)
        ).all()
    ]
    return Today(
        now=now,
        due_next_24h={c.value: due.get(c.value, 0) for c in Channel},
        last_24h=recent,
        needs_resolving=resolving,
        needs_resolving_total=resolving_total,
        flagged_replies=inbox(session, clinic_id, limit=REPLIES_SHOWN),
        flagged_total=waiting_count(session, clinic_id) if waiting is None else waiting,
        bounced=bounced,
        invalid_numbers=invalid,
        opt_outs=opt_outs,
    )


@dataclass(frozen=True)
class MessageFilter:
    """The message list's filters; dates are the clinic's local calendar days of ``due_at``, both inclusive."""

    status: str | None = None
    channel: str | None = None
    template: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    #: Only messages about this practitioner's visits (the visit's practitioner, else its plan's), or of their
    #: plans when a message is about no visit. Checked against the clinic by the caller.
    practitioner_id: int | None = None

    @classmethod
    def parse(
        cls,
        status: str | None = None,
        channel: str | None = None,
        template: str | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
    ) -> MessageFilter:
        """From query-string values (empty means "any"); raises ``InvalidInput`` naming a bad one."""
        if status and status not in {s.value for s in MessageStatus}:
            raise InvalidInput(f"unknown status {status!r}")
        if channel and channel not in {c.value for c in Channel}:
            raise InvalidInput(f"unknown channel {channel!r}")
        try:
            start = date.fromisoformat(date_from) if date_from else None
            end = date.fromisoformat(date_to) if date_to else None
        except ValueError:
            raise InvalidInput("dates are written YYYY-MM-DD") from None
        return cls(status or None, channel or None, (template or "").strip() or None, start, end)


def _filtered(clinic: Clinic, flt: MessageFilter) -> Select[Message]:
    query = _clinic_messages(clinic.id)
    tz = ZoneInfo(clinic.timezone)
    if flt.status:
        query = query.where(Message.status == MessageStatus(flt.status))
    if flt.channel:
        query = query.where(Message.channel == Channel(flt.channel))
    if flt.template:
        query = query.where(Message.template == flt.template)
    if flt.date_from:
        query = query.where(Message.due_at >= datetime.combine(flt.date_from, time(), tz))
    if flt.date_to:
        query = query.where(Message.due_at < datetime.combine(flt.date_to + timedelta(days=1), time(), tz))
    if flt.practitioner_id is not None:
        query = (
            query.outerjoin(Appointment, Appointment.id == Message.appointment_id)
            .outerjoin(Enrollment, Enrollment.id == Message.enrollment_id)
            .outerjoin(TreatmentPlan, TreatmentPlan.id == func.coalesce(Appointment.plan_id, Enrollment.plan_id))
            .where(func.coalesce(Appointment.practitioner_id, TreatmentPlan.practitioner_id) == flt.practitioner_id)
        )
    return query


def list_messages(
    session: Session, clinic: Clinic, flt: MessageFilter, *, page: int = 1, per_page: int = 50
) -> tuple[list[Message], int]:
    """One page of the clinic's messages matching ``flt``, newest due first, and how many match in all."""
    if page < 1:
        raise InvalidInput("page numbers start at 1")
    query = _filtered(clinic, flt)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    offset = (page - 1) * per_page
    if offset >= total:  # past the end: empty without asking (the offset might not fit the database's integers)
        return [], total
    rows = list(
        session.scalars(query.order_by(Message.due_at.desc(), Message.id.desc()).offset(offset).limit(per_page))
    )
    return rows, total


CSV_COLUMNS = (
    "id",
    "patient_id",
    "patient",
    "channel",
    "template",
    "step",
    "due_at_utc",
    "due_at_local",
    "status",
    "reason",
    "sent_at",
    "delivered_at",
    "error_code",
)


def messages_csv(session: Session, clinic: Clinic, flt: MessageFilter, batch: int = 1000) -> Iterator[str]:
    """The clinic's messages matching ``flt`` as CSV text chunks (a header line first), oldest due first."""
    tz = ZoneInfo(clinic.timezone)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    query = _filtered(clinic, flt).order_by(Message.due_at, Message.id).execution_options(yield_per=batch)
    for n, message in enumerate(session.scalars(query), 1):
        writer.writerow(_csv_row(message, tz))
        if n % batch == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _cell(value: Any) -> Any:
    # A cell starting with = + - @ is a formula to a spreadsheet: a patient's "name" must never run as one.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def _csv_row(message: Message, tz: ZoneInfo) -> list[Any]:
    patient = message.patient
    return [
        _cell(value)
        for value in [
            message.id,
            message.patient_id,
            f"{patient.first_name} {patient.last_name}",
            message.channel.value,
            message.template,
            message.step_key,
            message.due_at.isoformat(),
            message.due_at.astimezone(tz).isoformat(),
            message.status.value,
            message.status_reason or "",
            message.sent_at.isoformat() if message.sent_at else "",
            message.delivered_at.isoformat() if message.delivered_at else "",
            message.error_code or "",
        ]
    ]
