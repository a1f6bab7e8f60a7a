"""What staff see of the outbox: the Today page's counts and "needs attention" lists, and the message list
with its filters and CSV export. All reads, all scoped to one clinic."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
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


@dataclass
class Today:
    """The Today page's facts for one clinic at ``now``."""

    now: datetime
    due_next_24h: dict[str, int]
    last_24h: dict[str, int]
    needs_resolving: list[Message]
    needs_resolving_total: int
    flagged_replies: list[InboundMessage]
    flagged_total: int
    bounced: list[Message] = field(default_factory=list)
    invalid_numbers: list[Patient] = field(default_factory=list)
    opt_outs: list[tuple[ConsentEvent, Patient]] = field(default_factory=list)


def _clinic_messages(clinic_id: int) -> Select[Message]:
    return (
        select(Message)
        .join(Patient, Patient.id == Message.patient_id)
        .where(Patient.clinic_id == clinic_id)
        .options(contains_eager(Message.patient))
    )


def today(session: Session, clinic_id: int, now: datetime | None = None) -> Today:
    """Due in the next 24 h by channel; sent, delivered, failed (and the like) in the last 24 h; and what needs a
    person: failed and unknown messages, flagged replies, bounces and invalid numbers, opt-outs of the last week."""
    now = now or utcnow()
    in_clinic = Patient.clinic_id == clinic_id
    due = dict(
        session.execute(
            select(Message.channel, func.count())
            .join(Patient, Patient.id == Message.patient_id)
            .where(
                in_clinic,
                Message.status == MessageStatus.SCHEDULED,
                Message.due_at >= now,
                Message.due_at < now + timedelta(hours=24),
            )
            .group_by(Message.channel)
        ).all()
    )
    recent = dict(
        session.execute(
            select(Message.status, func.count())
            .join(Patient, Patient.id == Message.patient_id)
            .where(
                in_clinic,
                Message.updated_at >= now - timedelta(hours=24),
                Message.status.in_(
                    (MessageStatus.SENT, MessageStatus.DELIVERED, *NEEDS_RESOLVING, *BOUNCED, MessageStatus.SKIPPED)
                ),
            )
            .group_by(Message.status)
        ).all()
    )
    resolving_where = Message.status.in_(NEEDS_RESOLVING)
    resolving = list(
        session.scalars(_clinic_messages(clinic_id).where(resolving_where).order_by(Message.due_at).limit(LIST_LIMIT))
    )
    resolving_total = (
        session.scalar(
            select(func.count())
            .select_from(Message)
            .join(Patient, Patient.id == Message.patient_id)
            .where(in_clinic, resolving_where)
        )
        or 0
    )
    bounced = list(
        session.scalars(
            _clinic_messages(clinic_id)
            .where(Message.status.in_(BOUNCED), Message.updated_at >= now - RECENT)
            .order_by(Message.updated_at.desc())
            .limit(LIST_LIMIT)
        )
    )
    invalid = list(
        session.scalars(
            select(Patient).where(in_clinic, Patient.phone_invalid).order_by(Patient.last_name).limit(LIST_LIMIT)
        )
    )
    opt_outs = [
        (event, patient)
        for event, patient in session.execute(
            select(ConsentEvent, Patient)
            .join(Patient, Patient.id == ConsentEvent.patient_id)
            .where(in_clinic, ConsentEvent.state == ConsentState.OPTED_OUT, ConsentEvent.at >= now - RECENT)
            .order_by(ConsentEvent.at.desc())
            .limit(LIST_LIMIT)
        ).all()
    ]
    return Today(
        now=now,
        due_next_24h={c.value: due.get(c, 0) for c in Channel},
        last_24h={s.value: n for s, n in recent.items()},
        needs_resolving=resolving,
        needs_resolving_total=resolving_total,
        flagged_replies=inbox(session, clinic_id, limit=LIST_LIMIT),
        flagged_total=waiting_count(session, clinic_id),
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
