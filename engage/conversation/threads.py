"""The inbox as conversations: one thread per patient who texted the clinic, their texts and ours in order.

:func:`threads` lists a clinic's threads, urgent ones first (a red-flag symptom or a high pain score), then
those waiting for a person (then the latest text first),
each with its patient, how many texts wait, and the latest text; :func:`thread` is one patient's
conversation: inbound texts and the SMS engage sent or will send (with the delivery status), and the
visit a reply refers to (a confirmation or call-back names its visit; otherwise the next visit then).
A constant number of statements whatever the number of threads or texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, and_, case, func, or_, select
from sqlalchemy.orm import Session

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
    """The clinic's threads (see the module docstring), at most ``limit``, and how many there are in all."""
    waiting = func.sum(case((_WAITING, 1), else_=0)).cast(Integer)
    urgent = func.sum(case((and_(_WAITING, InboundMessage.urgent.is_(True)), 1), else_=0)).cast(Integer)
    per_patient = (
        select(
            InboundMessage.patient_id.label("patient_id"),
            waiting.label("waiting"),
            urgent.label("urgent"),
            func.max(InboundMessage.received_at).label("last_at"),
            func.max(InboundMessage.id).label("last_id"),
        )
        .where(InboundMessage.clinic_id == clinic_id, InboundMessage.patient_id.is_not(None))
        .group_by(InboundMessage.patient_id)
        .subquery()
    )
    total = session.scalar(select(func.count()).select_from(per_patient)) or 0
    rows = session.execute(
        select(per_patient.c.waiting, per_patient.c.urgent, per_patient.c.last_at, Patient, InboundMessage.body)
        .join(Patient, Patient.id == per_patient.c.patient_id)
        .join(InboundMessage, InboundMessage.id == per_patient.c.last_id)
        .order_by(
            (per_patient.c.urgent > 0).desc(),
            (per_patient.c.waiting > 0).desc(),
            per_patient.c.last_at.desc(),
            Patient.id,
        )
        .limit(limit)
    ).all()
    summaries = [
        ThreadSummary(
            patient_id=p.id,
            patient_name=f"{p.first_name} {p.last_name}",
            phone=p.phone,
            locale=p.locale,
            waiting=n or 0,
            urgent=u or 0,
            last_text_at=at,
            last_text=body,
        )
        for n, u, at, p, body in rows
    ]
    return summaries, total


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
