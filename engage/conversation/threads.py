"""The inbox as conversations: one thread per patient who texted the clinic, their texts and ours in order.

:func:`threads` lists a clinic's threads, urgent ones first (a red-flag symptom or a high pain score), then
those waiting for a person (then the latest text first),
each with its patient, how many texts wait, and the latest text; :func:`thread` is one patient's
conversation: inbound texts and the SMS engage sent or will send (with the delivery status), and the
visit a reply refers to (a confirmation or call-back names its visit; otherwise the next visit then).
A handful of statements whatever the number of threads or texts (the quiet threads are read a batch of
texts at a time, newest first, only when the waiting ones do not fill the page).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, and_, case, distinct, func, or_, select
from sqlalchemy.orm import Session, aliased

from engage.records.models import (
    Appointment,
    AppointmentStatus,
    Channel,
    InboundMessage,
    Message,
    MessageStatus,
    Patient,
    TreatmentPlan,
)

_WAITING = and_(InboundMessage.flagged.is_(True), InboundMessage.handled_at.is_(None))


@dataclass(frozen=True)
class ThreadSummary:
    """One row of the inbox."""

    patient_id: int
    patient_name: str
    phone: str | None
    locale: str
    waiting: int
    urgent: int  # waiting texts with a red-flag symptom or a high pain score
    last_text_at: datetime
    last_text: str


@dataclass(frozen=True)
class Item:
    """One text in a conversation: ``inbound`` from the patient, or ``outbound`` from the clinic."""

    direction: str
    at: datetime
    body: str | None  # None: a planned message, its text shown on demand
    template: str | None = None
    status: str | None = None
    reason: str | None = None
    by: str | None = None
    message_id: int | None = None
    reply: InboundMessage | None = None
    visit_at: datetime | None = None


def threads(session: Session, clinic_id: int, *, limit: int = 100) -> tuple[list[ThreadSummary], int]:
    """The clinic's threads (see the module docstring), at most ``limit``, and how many there are in all.

    Read without aggregating every text of the clinic: the waiting threads come from the texts waiting for a
    person (a partial index), each with its latest text; when they do not fill the page, the other threads
    come from the clinic's latest texts (an index by time)."""
    in_clinic = and_(InboundMessage.clinic_id == clinic_id, InboundMessage.patient_id.is_not(None))
    total = session.scalar(select(func.count(distinct(InboundMessage.patient_id))).where(in_clinic)) or 0
    waiting = (
        select(
            InboundMessage.patient_id.label("patient_id"),
            func.count().label("waiting"),
            func.sum(case((InboundMessage.urgent.is_(True), 1), else_=0)).cast(Integer).label("urgent"),
        )
        .where(InboundMessage.clinic_id == clinic_id, InboundMessage.patient_id.is_not(None), _WAITING)
        .group_by(InboundMessage.patient_id)
        .subquery("waiting")
    )
    latest = aliased(InboundMessage)
    last_at = (
        select(func.max(latest.received_at))
        .where(latest.clinic_id == clinic_id, latest.patient_id == waiting.c.patient_id)
        .correlate(waiting)
        .scalar_subquery()
    )
    ranked = select(waiting.c.patient_id, waiting.c.waiting, waiting.c.urgent, last_at.label("last_at")).subquery()
    rows: list[tuple[int, int, int, datetime]] = [
        (patient_id, n, u, at)
        for patient_id, n, u, at in session.execute(
            select(ranked.c.patient_id, ranked.c.waiting, ranked.c.urgent, ranked.c.last_at)
            .order_by((ranked.c.urgent > 0).desc(), ranked.c.last_at.desc(), ranked.c.patient_id)
            .limit(limit)
        )
    ]
    if len(rows) < limit:
        rows += [(patient_id, 0, 0, at) for patient_id, at in _quiet_threads(session, clinic_id, limit - len(rows))]
    if not rows:
        return [], total
    patients = {p.id: p for p in session.scalars(select(Patient).where(Patient.id.in_([r[0] for r in rows])))}
    texts: dict[tuple[int, datetime], Any] = {}
    for text in session.execute(
        select(InboundMessage.id, InboundMessage.patient_id, InboundMessage.received_at, InboundMessage.body)
        .where(
            InboundMessage.clinic_id == clinic_id,
            InboundMessage.patient_id.in_([r[0] for r in rows]),
            InboundMessage.received_at.in_({r[3] for r in rows}),
        )
        .order_by(InboundMessage.id)
    ):
        texts[(text.patient_id, text.received_at)] = text  # of two at the same instant, the later one
    summaries = [
        ThreadSummary(
            patient_id=patient_id,
            patient_name=f"{patients[patient_id].first_name} {patients[patient_id].last_name}",
            phone=patients[patient_id].phone,
            locale=patients[patient_id].locale,
            waiting=n or 0,
            urgent=u or 0,
            last_text_at=at,
            last_text=texts[(patient_id, at)].body,
        )
        for patient_id, n, u, at in rows
    ]
    return summaries, total


def _quiet_threads(session: Session, clinic_id: int, wanted: int) -> list[tuple[int, datetime]]:
    """(patient id, time of their latest text) of the threads with nothing waiting, latest first: read from the
    clinic's texts newest first, a batch at a time, until ``wanted`` threads are found or the texts run out."""
    found: list[tuple[int, datetime]] = []
    seen: set[int] = set()
    batch = max(200, 4 * wanted)
    before: tuple[datetime, int] | None = None
    while len(found) < wanted:
        query = select(InboundMessage.patient_id, InboundMessage.id, InboundMessage.received_at).where(
            InboundMessage.clinic_id == clinic_id, InboundMessage.patient_id.is_not(None)
        )
        if before is not None:
            query = query.where(
                or_(
                    InboundMessage.received_at < before[0],
                    and_(InboundMessage.received_at == before[0], InboundMessage.id < before[1]),
                )
            )
        texts = session.execute(
            query.order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc()).limit(batch)
        ).all()
        fresh: list[tuple[int, datetime]] = []
        for text in texts:  # newest first: a patient's first text here is their latest
            if text.patient_id not in seen:
                seen.add(text.patient_id)
                fresh.append((text.patient_id, text.received_at))
        waiting = (
            set(
                session.scalars(
                    select(InboundMessage.patient_id).where(
                        InboundMessage.clinic_id == clinic_id,
                        InboundMessage.patient_id.in_([p for p, _ in fresh]),
                        _WAITING,
                    )
                )
            )
            if fresh
            else set()
        )
        found += [(p, last) for p, last in fresh if p not in waiting]
        if len(texts) < batch:
            break
        before = (texts[-1].received_at, texts[-1].id)
    return found[:wanted]


def thread(session: Session, patient_id: int, *, limit: int = 200) -> list[Item]:
    """One patient's conversation, oldest first (the latest ``limit`` texts each way)."""
    replies = list(
        session.scalars(
            select(InboundMessage)
            .where(InboundMessage.patient_id == patient_id)
            .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
            .limit(limit)
        )
    )
    sent_at = func.coalesce(Message.sent_at, Message.due_at)
    outbound = list(
        session.scalars(
            select(Message)
            .where(
                Message.patient_id == patient_id,
                Message.channel == Channel.SMS,
                or_(Message.step_key == "staff-reply", Message.status.not_in(_NOT_SENT)),
            )
            .order_by(sent_at.desc(), Message.id.desc())
            .limit(limit)
        )
    )
    visits = _visits(session, patient_id)
    items = [
        Item("inbound", r.received_at, r.body, reply=r, visit_at=_visit_of(r.received_at, visits)) for r in replies
    ]
    for m in outbound:
        staff = m.step_key == "staff-reply"
        items.append(
            Item(
                "outbound",
                m.sent_at or m.due_at,
                str(m.context.get("body")) if staff else None,
                template=m.template,
                status=m.status.value,
                reason=m.status_reason or m.last_error,
                by=str(m.context.get("by")) if staff else None,
                message_id=m.id,
            )
        )
    return sorted(items, key=lambda item: (item.at, item.direction == "outbound"))


_NOT_SENT = (MessageStatus.SCHEDULED, MessageStatus.SKIPPED, MessageStatus.CANCELLED)


def _visits(session: Session, patient_id: int) -> list[datetime]:
    return list(
        session.scalars(
            select(Appointment.start_at)
            .join(TreatmentPlan, TreatmentPlan.id == Appointment.plan_id)
            .where(TreatmentPlan.patient_id == patient_id, Appointment.status != AppointmentStatus.CANCELLED)
            .order_by(Appointment.start_at)
        )
    )


def _visit_of(at: datetime, visits: list[datetime]) -> datetime | None:
    """The visit a text refers to: the next one after it was sent."""
    return next((v for v in visits if v > at), None)


def thread_facts(session: Session, patient: Patient) -> dict[str, Any]:
    """What the thread's header shows besides the patient: how many texts wait."""
    waiting = session.scalar(
        select(func.count()).select_from(InboundMessage).where(InboundMessage.patient_id == patient.id, _WAITING)
    )
    return {"waiting": waiting or 0}


def waiting_texts(session: Session, patient_id: int) -> list[InboundMessage]:
    """The patient's texts waiting for a person, oldest first."""
    return list(
        session.scalars(
            select(InboundMessage).where(InboundMessage.patient_id == patient_id, _WAITING).order_by(InboundMessage.id)
        )
    )
