"""The welcome SMS (CTIA): the first time a patient is enrolled with text messages, one SMS says who
writes, what about and roughly how often, that message and data rates may apply, and HELP and STOP.

It is an ordinary outbox row, step ``welcome`` / occurrence ``patient``, written with the enrollment
that first plans an SMS for a patient SMS can reach now, due at the first minute outside the clinic's
SMS quiet hours, and sent by the ordinary dispatcher. No sequence plans it, so:

- reconcile leaves it alone, except that an opt-out (or lost phone) skips it and an enrollment or
  plan that ends cancels it; it is never revived nor moved;
- the send-time check asks only the status, consent, contact and quiet-hours questions of it.

Once one was handed over or is on its way, no later enrollment writes another; a skipped or
cancelled one lets the next enrollment try again. (One per patient is enforced by this read, inside
the enrolling transaction, not by a constraint.)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.records.models import Channel, Clinic, Message, MessageStatus, Patient
from engage.records.quiet_hours import quiet_hours_for
from engage.schedule.windows import shift_forward

WELCOME_STEP = "welcome"
WELCOME_OCCURRENCE = "patient"
WELCOME_TEMPLATE = "welcome"
_NOT_SENT = (MessageStatus.SKIPPED, MessageStatus.CANCELLED, MessageStatus.FAILED)


def is_welcome(message: Message) -> bool:
    return message.step_key == WELCOME_STEP


def welcomed(session: Session, patient_ids: Iterable[int]) -> set[int]:
    """Those of ``patient_ids`` who already have a welcome SMS sent or on its way."""
    ids = list(patient_ids)
    if not ids:
        return set()
    return set(
        session.scalars(
            select(Message.patient_id).where(
                Message.patient_id.in_(ids),
                Message.step_key == WELCOME_STEP,
                Message.status.not_in(_NOT_SENT),
            )
        )
    )


def wants_welcome(*, already_welcomed: bool, sms_refused: str | None, channels: Iterable[Channel]) -> bool:
    """Whether an enrollment planning messages on ``channels`` welcomes its patient: none sent or on its way,
    SMS can reach them now (``sms_refused`` is None) and the enrollment plans at least one SMS."""
    return not already_welcomed and sms_refused is None and any(c is Channel.SMS for c in channels)


def first_allowed_minute(patient: Patient, clinic: Clinic, now: datetime) -> datetime:
    """``now``, or the end of the clinic's SMS quiet hours in the patient's time zone when ``now`` is in them."""
    tz = ZoneInfo(patient.effective_timezone)
    quiet = quiet_hours_for(clinic.quiet_hours, Channel.SMS.value)
    return shift_forward(now, tz, quiet)


def welcome_row(
    *, enrollment_id: int, patient: Patient, clinic: Clinic, now: datetime, plan_version: int = 0
) -> dict[str, Any]:
    """The ``message`` values (as :func:`engage.schedule.reconcile.new_row`) of a patient's welcome SMS."""
    return {
        "enrollment_id": enrollment_id,
        "patient_id": patient.id,
        "clinic_id": clinic.id,
        "appointment_id": None,
        "step_key": WELCOME_STEP,
        "occurrence": WELCOME_OCCURRENCE,
        "channel": Channel.SMS,
        "template": WELCOME_TEMPLATE,
        "context": {},
        "due_at": first_allowed_minute(patient, clinic, now),
        "status": MessageStatus.SCHEDULED,
        "status_reason": None,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "plan_version": plan_version,
    }
