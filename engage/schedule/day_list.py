"""The visits of a clinic's day as the front desk reads them (Today's list).

For each visit between two instants: the patient's name, phone and date of birth, its session
number in the plan (over the visits that are not cancelled, :mod:`engage.schedule.session_numbers`)
and its confirmation state in words: confirmed by the patient's reply or by a staff member, a
call-back requested, the reminder sent with no answer yet, the reminder still to go, or the reminder
not sent and why. A fixed number of statements whatever the number of visits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Executable, bindparam, func, select
from sqlalchemy.orm import Session, aliased

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


@dataclass(slots=True)
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
    session_count: int  # the plan's visits that are not cancelled (0 for a cancelled one: not shown)
    confirmation: str  # "confirmed", "callback", "reminded", "reminder_due", "not_reminded", "none"
    confirmation_text: str
    practitioner: str | None = None  # the visit's, else its plan's
    hours: str = ""  # "08:00–08:45", local
    day_time: str = ""  # "Sat 08:00", local


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """The instants a local calendar day of ``tz`` starts and ends (23 or 25 hours across DST)."""
    zone = ZoneInfo(tz)
    return datetime.combine(day, time(), zone), datetime.combine(day + timedelta(days=1), time(), zone)


def visits_between(
    session: Session, clinic_id: int, start: datetime, end: datetime, tz: str, *, practitioner_id: int | None = None
) -> list[Visit]:
    """The clinic's visits starting in ``[start, end)``, by start time; times in words are in ``tz``.

    ``practitioner_id``: only that practitioner's visits (the visit's practitioner, else its plan's).
    One statement: the visits, their session numbers (a window over their plans' visits) and their latest
    reminder (no lists of ids sent back and forth, whatever the number of visits)."""
    params: dict[str, Any] = {"clinic_id": clinic_id, "start": start, "end": end}
    if practitioner_id is not None:
        params["practitioner_id"] = practitioner_id
    rows = session.execute(_day_statement(practitioner_id is not None), params)
    zone = ZoneInfo(tz)
    visits = []
    # Unpacked by position (the statement's column order): a row's columns read by name cost more than the
    # rest of the loop, at some 20 names for each of a day's hundreds of visits.
    for (
        appointment_id,
        plan_id,
        start_at,
        end_at,
        status,
        confirmed_at,
        confirmed_by,
        callback_requested_at,
        patient_id,
        first_name,
        last_name,
        phone,
        date_of_birth,
        practitioner,
        number,
        session_count,
        *reminder,
    ) in rows:
        kind, words = _confirmation(zone, confirmed_at, confirmed_by, callback_requested_at, Reminder(*reminder))
        start_local = start_at.astimezone(zone)
        start_clock = _clock(start_local)
        visits.append(
            Visit(
                appointment_id=appointment_id,
                plan_id=plan_id,
                patient_id=patient_id,
                patient_name=f"{first_name} {last_name}",
                phone=phone,
                date_of_birth=date_of_birth,
                start_at=start_at,
                end_at=end_at,
                status=status,
                session_number=number,
                session_count=session_count or 0,
                confirmation=kind,
                confirmation_text=words,
                practitioner=practitioner,
                hours=f"{start_clock}–{_clock(end_at.astimezone(zone))}",
                day_time=f"{_DAYS[start_local.weekday()]} {start_clock}",
            )
        )
    return visits


class Reminder(NamedTuple):
    """A visit's latest reminder, as the day's statement reads it (``status`` None: no reminder planned)."""

    status: MessageStatus | None
    sent_at: datetime | None
    due_at: datetime | None
    reason: str | None
    error: str | None


# Times in words without strftime (a few microseconds each, thousands a page): English names, as strftime's in
# the C locale the app runs in.
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _clock(moment: datetime) -> str:
    """``08:05``."""
    return f"{moment.hour:02d}:{moment.minute:02d}"


def _day_and_clock(moment: datetime) -> str:
    """``Sat 06 Dec 08:05``, as ``%a %d %b %H:%M``."""
    return f"{_DAYS[moment.weekday()]} {moment.day:02d} {_MONTHS[moment.month - 1]} {_clock(moment)}"


@lru_cache(maxsize=2)
def _day_statement(by_practitioner: bool) -> Executable:
    """The statement of :func:`visits_between`, built once (its parameters bound at each call): building a
    statement of a CTE, a window and four joins costs more than running it on a day of visits.

    The day's visits are read once with everything shown of them and the id of their latest reminder (one
    probe of the message index by visit) in the CTE; their session numbers are a window over their plans'
    visits. Fewer joins than joining the visits' tables again: on PostgreSQL at 300 visits a day, planning
    takes a third of the time and running it half."""
    who = func.coalesce(Appointment.practitioner_id, TreatmentPlan.practitioner_id)
    latest_reminder = (
        select(func.max(Message.id))
        .where(Message.appointment_id == Appointment.id, Message.step_key == REMINDER_STEP)
        .correlate(Appointment)
        .scalar_subquery()
    )
    in_range = (
        select(
            Appointment.id,
            Appointment.plan_id,
            Appointment.start_at,
            Appointment.end_at,
            Appointment.status,
            Appointment.confirmed_at,
            Appointment.confirmed_by,
            Appointment.callback_requested_at,
            who.label("practitioner_id"),
            Patient.id.label("patient_id"),
            Patient.first_name,
            Patient.last_name,
            Patient.phone,
            Patient.date_of_birth,
            latest_reminder.label("reminder_id"),
        )
        .join(TreatmentPlan, TreatmentPlan.id == Appointment.plan_id)
        .join(Patient, Patient.id == TreatmentPlan.patient_id)
        .where(
            Patient.clinic_id == bindparam("clinic_id"),
            Appointment.start_at >= bindparam("start"),
            Appointment.start_at < bindparam("end"),
        )
    )
    if by_practitioner:
        in_range = in_range.where(who == bindparam("practitioner_id"))
    day = in_range.cte("day_visits")
    kept = aliased(Appointment)
    numbers = (
        select(
            kept.id.label("id"),
            func.row_number().over(partition_by=kept.plan_id, order_by=(kept.start_at, kept.id)).label("number"),
            func.count().over(partition_by=kept.plan_id).label("count"),
        )
        .where(kept.plan_id.in_(select(day.c.plan_id)), kept.status != AppointmentStatus.CANCELLED)
        .subquery("numbers")
    )
    return (
        select(
            day.c.id,
            day.c.plan_id,
            day.c.start_at,
            day.c.end_at,
            day.c.status,
            day.c.confirmed_at,
            day.c.confirmed_by,
            day.c.callback_requested_at,
            day.c.patient_id,
            day.c.first_name,
            day.c.last_name,
            day.c.phone,
            day.c.date_of_birth,
            Practitioner.name.label("practitioner"),
            numbers.c.number,
            numbers.c.count.label("session_count"),
            Message.status.label("reminder_status"),
            Message.sent_at.label("reminder_sent_at"),
            Message.due_at.label("reminder_due_at"),
            Message.status_reason.label("reminder_reason"),
            Message.last_error.label("reminder_error"),
        )
        .select_from(day)
        .outerjoin(Practitioner, Practitioner.id == day.c.practitioner_id)
        .outerjoin(numbers, numbers.c.id == day.c.id)
        .outerjoin(Message, Message.id == day.c.reminder_id)
        .order_by(day.c.start_at, day.c.last_name, day.c.id)
    )


def _confirmation(
    zone: ZoneInfo,
    confirmed_at: datetime | None,
    confirmed_by: str | None,
    callback_requested_at: datetime | None,
    reminder: Reminder,
) -> tuple[str, str]:
    """(kind, words) for a visit: confirmed (by whom), a call-back requested, else what became of its reminder."""

    def at(moment: datetime | None) -> str:
        return _day_and_clock(moment.astimezone(zone)) if moment else ""

    if confirmed_at is not None:
        who = f"by {confirmed_by}" if confirmed_by else "by the patient's reply"
        return "confirmed", f"Confirmed {who} ({at(confirmed_at)})"
    if callback_requested_at is not None:
        return "callback", f"Call back requested ({at(callback_requested_at)})"
    status = reminder.status
    if status is None:
        return "none", "No reminder planned (not enrolled in a sequence)"
    if status in _SENT:
        return "reminded", f"Reminder sent {at(reminder.sent_at or reminder.due_at)}, no answer yet"
    if status in _WAITING:
        return "reminder_due", f"Reminder due {at(reminder.due_at)}"
    why = reminder.reason or reminder.error or status.value
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
