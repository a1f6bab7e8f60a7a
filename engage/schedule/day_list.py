"""The visits of a clinic's day as the front desk reads them (Today's list).

For each visit between two instants: the patient's name, phone and date of birth, its session
number in the plan (over the visits that are not cancelled, :mod:`engage.schedule.session_numbers`)
and its confirmation state in words: confirmed by the patient's reply or by a staff member, a
call-back requested, the reminder sent with no answer yet, the reminder still to go, or the reminder
not sent and why. A fixed number of statements whatever the number of visits.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engage.records.models import (
    Appointment,
    AppointmentStatus,
    Message,
    MessageStatus,
    Patient,
    Practitioner,
    TreatmentPlan,
)

REMINDER_STEP = "visit-reminder"
_SENT = {MessageStatus.SENT, MessageStatus.DELIVERED}
_WAITING = {MessageStatus.SCHEDULED, MessageStatus.QUEUED, MessageStatus.SENDING}


@dataclass(frozen=True)
class Visit:
    """One visit of the day, ready to show."""

    appointment_id: int
    plan_id: int
    patient_id: int
    patient_name: str
    phone: str | None
    date_of_birth: date | None
    start_at: datetime
    end_at: datetime
    status: AppointmentStatus
    session_number: int | None  # None: cancelled
    session_count: int  # the plan's visits that are not cancelled
    confirmation: str  # "confirmed", "callback", "reminded", "reminder_due", "not_reminded", "none"
    confirmation_text: str
    practitioner: str | None = None  # the visit's, else its plan's


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """The instants a local calendar day of ``tz`` starts and ends (23 or 25 hours across DST)."""
    zone = ZoneInfo(tz)
    return datetime.combine(day, time(), zone), datetime.combine(day + timedelta(days=1), time(), zone)


def visits_between(
    session: Session, clinic_id: int, start: datetime, end: datetime, tz: str, *, practitioner_id: int | None = None
) -> list[Visit]:
    """The clinic's visits starting in ``[start, end)``, by start time; times in words are in ``tz``.

    ``practitioner_id``: only that practitioner's visits (the visit's practitioner, else its plan's)."""
    who = func.coalesce(Appointment.practitioner_id, TreatmentPlan.practitioner_id)
    query = (
        select(
            Appointment.id,
            Appointment.plan_id,
            Appointment.start_at,
            Appointment.end_at,
            Appointment.status,
            Appointment.confirmed_at,
            Appointment.confirmed_by,
            Appointment.callback_requested_at,
            Patient.id.label("patient_id"),
            Patient.first_name,
            Patient.last_name,
            Patient.phone,
            Patient.date_of_birth,
            Practitioner.name.label("practitioner"),
        )
        .join(TreatmentPlan, TreatmentPlan.id == Appointment.plan_id)
        .join(Patient, Patient.id == TreatmentPlan.patient_id)
        .outerjoin(Practitioner, Practitioner.id == who)
        .where(Patient.clinic_id == clinic_id, Appointment.start_at >= start, Appointment.start_at < end)
        .order_by(Appointment.start_at, Patient.last_name, Appointment.id)
    )
    if practitioner_id is not None:
        query = query.where(who == practitioner_id)
    rows = session.execute(query).all()
    if not rows:
        return []
    plan_ids = sorted({row.plan_id for row in rows})
    kept: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for plan_id, start_at, appointment_id in session.execute(
        select(Appointment.plan_id, Appointment.start_at, Appointment.id).where(
            Appointment.plan_id.in_(plan_ids), Appointment.status != AppointmentStatus.CANCELLED
        )
    ):
        kept[plan_id].append((start_at, appointment_id))
    numbers = {
        appointment_id: n for visits in kept.values() for n, (_, appointment_id) in enumerate(sorted(visits), start=1)
    }
    reminders: dict[int, Any] = {}
    for reminder in session.execute(
        select(
            Message.appointment_id,
            Message.status,
            Message.sent_at,
            Message.due_at,
            Message.status_reason,
            Message.last_error,
        )
        .where(Message.appointment_id.in_([row.id for row in rows]), Message.step_key == REMINDER_STEP)
        .order_by(Message.id)
    ):
        reminders[reminder.appointment_id] = reminder
    zone = ZoneInfo(tz)
    visits = []
    for row in rows:
        kind, words = _confirmation(row, reminders.get(row.id), zone)
        visits.append(
            Visit(
                appointment_id=row.id,
                plan_id=row.plan_id,
                patient_id=row.patient_id,
                patient_name=f"{row.first_name} {row.last_name}",
                phone=row.phone,
                date_of_birth=row.date_of_birth,
                start_at=row.start_at,
                end_at=row.end_at,
                status=row.status,
                session_number=numbers.get(row.id),
                session_count=len(kept[row.plan_id]),
                confirmation=kind,
                confirmation_text=words,
                practitioner=row.practitioner,
            )
        )
    return visits


def _confirmation(appointment: Any, reminder: Any, zone: ZoneInfo) -> tuple[str, str]:
    """(kind, words) for a visit row and its reminder row (None: no reminder planned)."""

    def at(moment: datetime | None) -> str:
        return moment.astimezone(zone).strftime("%a %d %b %H:%M") if moment else ""

    if appointment.confirmed_at is not None:
        who = f"by {appointment.confirmed_by}" if appointment.confirmed_by else "by the patient's reply"
        return "confirmed", f"Confirmed {who} ({at(appointment.confirmed_at)})"
    if appointment.callback_requested_at is not None:
        return "callback", f"Call back requested ({at(appointment.callback_requested_at)})"
    if reminder is None:
        return "none", "No reminder planned (not enrolled in a sequence)"
    if reminder.status in _SENT:
        return "reminded", f"Reminder sent {at(reminder.sent_at or reminder.due_at)}, no answer yet"
    if reminder.status in _WAITING:
        return "reminder_due", f"Reminder due {at(reminder.due_at)}"
    why = reminder.status_reason or reminder.last_error or reminder.status.value
    return "not_reminded", f"Reminder not sent: {why}"


def next_visits(session: Session, patient_ids: list[int], now: datetime) -> dict[int, datetime]:
    """Each patient's next booked visit (its start), for those who have one."""
    if not patient_ids:
        return {}
    rows = session.execute(
        select(TreatmentPlan.patient_id, func.min(Appointment.start_at))
        .join(Appointment, Appointment.plan_id == TreatmentPlan.id)
        .where(
            TreatmentPlan.patient_id.in_(sorted(set(patient_ids))),
            Appointment.status == AppointmentStatus.BOOKED,
            Appointment.start_at > now,
        )
        .group_by(TreatmentPlan.patient_id)
    ).all()
    return {patient_id: start for patient_id, start in rows}
