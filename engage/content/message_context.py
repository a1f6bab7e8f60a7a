"""The template contexts: what a message template may see, as plain dicts.

- :func:`message_context`: for one outbox row, in its patient's time zone and
  locale (what :mod:`engage.delivery.send_checks` renders at send time);
- :func:`sample_context`: worst-case sample data without a patient, for
  ``engage templates check`` and ``preview``;
- :func:`patient_preview_context`: a real patient's next appointment, for
  ``engage templates preview --patient``.

Templates get dicts, never ORM objects, so they cannot wander through
relationships to other patients' data. Rendering is in :mod:`engage.content.rendering`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import phonenumbers
from sqlalchemy import ColumnElement, Table, bindparam, exists, or_, select
from sqlalchemy.orm import Session, aliased

from engage.clock import utcnow
from engage.config import get_settings
from engage.content import links
from engage.content.exercises import exercises_for, load_exercises
from engage.content.rendering import DEFAULT_LOCALE, babel_locale
from engage.records.models import (
    Appointment,
    AppointmentStatus,
    Channel,
    Message,
    MessageStatus,
    Outcome,
    Patient,
    TreatmentPlan,
)

__all__ = [
    "SAMPLE_CLINIC",
    "SAMPLE_START",
    "SAMPLE_TZ",
    "earlier_sms_exists",
    "message_context",
    "patient_preview_context",
    "sample_context",
]

#: Outbox statuses of an earlier SMS that never reached the patient, so did not show them the STOP line.
_NOT_RECEIVED = (MessageStatus.CANCELLED, MessageStatus.SKIPPED, MessageStatus.FAILED, MessageStatus.UNDELIVERED)


def _display_phone(phone: str | None, region: str | None) -> str:
    if not phone:
        return ""
    try:
        parsed = phonenumbers.parse(phone, region or get_settings().default_region)
    except phonenumbers.NumberParseException:
        return phone
    same_country = phonenumbers.region_code_for_number(parsed) == (region or get_settings().default_region)
    fmt = phonenumbers.PhoneNumberFormat.NATIONAL if same_country else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(parsed, fmt)


def _context(
    *,
    clinic: dict[str, Any],
    first_name: str,
    tz: str,
    locale: str,
    start: datetime | None,
    end: datetime | None,
    step: dict[str, Any],
    first_sms: bool,
    patient_id: int,
    message_id: int,
    channel: str,
    preview: bool = False,
    plan_id: int = 0,
    exercise_keys: list[str] | tuple[str, ...] = (),
    pain_scores: list[int] | None = None,
    needs: frozenset[str] | None = None,
) -> dict[str, Any]:
    zone = ZoneInfo(tz)
    appointment = None
    if start is not None:
        appointment = {
            "start": start.astimezone(zone),
            "end": (end or start + timedelta(minutes=45)).astimezone(zone),
        }
    return {
        "patient": {"first_name": first_name},
        "clinic": clinic,
        "appointment": appointment,
        "step": step,
        "first_sms": first_sms,
        "channel": channel,
        **(_preview_links() if preview else _links(patient_id, message_id, channel, plan_id, needs)),
        # The exercises the practitioner picked, in the patient's language, and the page that shows them.
        "exercises": exercises_for(exercise_keys, locale),
        "pain_scores": list(pain_scores or []),  # the patient's 0-10 answers, oldest first (emails only)
        "tz": tz,
        "locale": locale,
    }


#: The signed links of a message; each costs a signature, so only those its template reads are made.
LINKS = frozenset({"unsubscribe_url", "reassessment_urls", "reassessment_form_url", "exercises_url", "intake_url"})


def _links(
    patient_id: int, message_id: int, channel: str, plan_id: int, needs: frozenset[str] | None = None
) -> dict[str, Any]:
    """The message's signed links; with ``needs`` (the variables its template reads) only those among them,
    and always the unsubscribe link (an email's List-Unsubscribe header carries it)."""

    def wanted(*names: str) -> bool:
        return needs is None or any(name in needs for name in names)

    found: dict[str, Any] = {"unsubscribe_url": links.unsubscribe_url(patient_id, channel)}
    if wanted("reassessment_urls", "reassessment_form_url"):
        form_url, score_urls = links.reassessment_urls(message_id)  # one signature, not twelve
        found.update(reassessment_urls=score_urls, reassessment_form_url=form_url)
    if wanted("exercises_url"):
        found["exercises_url"] = links.exercises_url(plan_id)
    if wanted("intake_url"):
        found["intake_url"] = links.intake_url(patient_id)
    return found


def _preview_links() -> dict[str, Any]:
    # Previews (also of a real patient) carry links that are visibly not real and that the server refuses.
    return {
        "unsubscribe_url": links.preview_unsubscribe_url(),
        "reassessment_urls": [(score, links.preview_reassessment_url(score)) for score in range(11)],
        "reassessment_form_url": links.preview_reassessment_url(None),
        "exercises_url": links.preview_exercises_url(),
        "intake_url": links.preview_intake_url(),
    }


def _clinic(
    name: str,
    address: str,
    phone: str | None,
    region: str | None,
    sms_name: str | None = None,
    channel: str = Channel.EMAIL.value,
) -> dict[str, Any]:
    """The clinic as templates see it. In an SMS ``name`` is the short SMS name when the clinic has one
    (a lock screen shows it to anyone); ``full_name`` is always the registered name."""
    lines = [line.strip() for line in address.splitlines() if line.strip()]
    short = sms_name or name
    return {
        "name": short if channel == Channel.SMS.value else name,
        "full_name": name,
        "short_name": short,
        "address": "\n".join(lines),
        "address_lines": lines,
        "phone": _display_phone(phone, region),
        "phone_e164": phone or "",
    }


def _clinic_of(clinic: Any, channel: str) -> dict[str, Any]:
    return _clinic(clinic.name, clinic.address, clinic.phone, clinic.region, clinic.sms_name, channel)


def _step(message: Message) -> dict[str, Any]:
    step = dict(message.context or {})
    # Planning records the stretch day in context; older rows only in the occurrence key ("appt:12:day:2").
    match = re.search(r"(?:^|:)day:(\d+)", message.occurrence or "")
    if "day" not in step and match:
        step["day"] = int(match.group(1))
    return step


_EARLIER = aliased(Message, name="earlier")  # built once: an alias costs more to build than the query it is in


def earlier_sms_exists(message: Any) -> ColumnElement[bool]:
    """Whether an earlier SMS of ``message``'s enrollment reached (or may still reach) the patient.

    ``message`` is a row or the ``Message`` entity itself (then the clause is correlated, for a
    caller that reads it in the same SELECT as the row).
    """
    earlier = _EARLIER
    return exists(
        select(earlier.id).where(
            earlier.enrollment_id == message.enrollment_id,
            earlier.channel == Channel.SMS,
            earlier.id != message.id,
            earlier.status.not_in(_NOT_RECEIVED),
            or_(earlier.due_at < message.due_at, (earlier.due_at == message.due_at) & (earlier.id < message.id)),
        )
    )


def _is_first_sms(session: Session, message: Message) -> bool:
    return not session.scalar(select(earlier_sms_exists(message)))


def message_context(
    session: Session,
    message: Message,
    first_sms: bool | None = None,
    *,
    pain_scores: list[int] | None = None,
    needs: frozenset[str] | None = None,
) -> dict[str, Any]:
    """The template context for one outbox row, in its patient's time zone and locale.

    ``first_sms`` is true for an SMS with no earlier SMS in the same enrollment
    that reached (or may still reach) the patient; a caller that read
    :func:`earlier_sms_exists` with the row passes it in, else it is asked here.
    ``needs``: the variables the message's template reads
    (:func:`engage.content.rendering.template_variables`): links it never shows are not signed (None: all).
    """
    patient = message.patient
    clinic = patient.clinic
    appointment = message.appointment
    channel = Channel(message.channel).value
    return _context(
        clinic=_clinic_of(clinic, channel),
        first_name=patient.first_name,
        tz=patient.effective_timezone,
        locale=patient.locale or DEFAULT_LOCALE,
        start=appointment.start_at if appointment else None,
        end=appointment.end_at if appointment else None,
        step=_step(message),
        first_sms=channel == Channel.SMS.value
        and (first_sms if first_sms is not None else _is_first_sms(session, message)),
        patient_id=patient.id,
        message_id=message.id,
        channel=channel,
        plan_id=message.enrollment.plan_id if message.enrollment else 0,
        exercise_keys=list(message.enrollment.plan.exercises or ()) if message.enrollment else [],
        # Only an email may show the pain trend (an SMS is on a lock screen), so only emails pay for the query.
        pain_scores=(pain_scores if pain_scores is not None else _pain_scores(session, patient.id))
        if channel == Channel.EMAIL.value
        else None,
        needs=needs,
    )


def _pain_scores(session: Session, patient_id: int) -> list[int]:
    return list(session.scalars(_PAIN_SCORES, {"patient_id": patient_id}))


def pain_scores_of(session: Session, patient_ids: Iterable[int]) -> dict[int, list[int]]:
    """:func:`_pain_scores` of many patients in one query (a send batch's emails); a patient without any: absent."""
    ids = sorted(set(patient_ids))
    scores: dict[int, list[int]] = {}
    if ids:
        for patient_id, score in session.execute(_PAIN_SCORES_OF, {"patient_ids": ids}):
            scores.setdefault(patient_id, []).append(score)
    return scores


# Built once (Core columns, a bound parameter): building and caching the statement per email cost more than
# running it.
_OUTCOMES = cast(Table, Outcome.__table__)
_PAIN_SCORES = (
    select(_OUTCOMES.c.score)
    .where(_OUTCOMES.c.patient_id == bindparam("patient_id"))
    .order_by(_OUTCOMES.c.recorded_at, _OUTCOMES.c.id)
)
_PAIN_SCORES_OF = (
    select(_OUTCOMES.c.patient_id, _OUTCOMES.c.score)
    .where(_OUTCOMES.c.patient_id.in_(bindparam("patient_ids", expanding=True)))
    .order_by(_OUTCOMES.c.patient_id, _OUTCOMES.c.recorded_at, _OUTCOMES.c.id)
)


# Sample data is the worst case for length: a ~40-character clinic name, the
# longest weekday and month names, a two-digit hour, and the STOP line.
SAMPLE_TZ = "America/Los_Angeles"
SAMPLE_START = datetime(2026, 9, 30, 10, 30, tzinfo=ZoneInfo(SAMPLE_TZ))  # a Wednesday in September
SAMPLE_CLINIC = _clinic(
    "Riverside Physical Therapy & Wellness Co",
    "1200 Riverside Avenue, Suite 210\nPortland, OR 97201",
    "+15035550123",
    "US",
)
SAMPLE_FIRST_NAMES = {"en": "Alexandra", "es": "Alejandra"}


#: What a staff member typically writes back in a conversation, for checking and previewing ``staff-reply``.
SAMPLE_STAFF_REPLY = "Yes, there is free parking behind the building. See you Tuesday!"


def sample_context(
    name: str,
    channel: str,
    locale: str,
    *,
    step: dict[str, Any] | None = None,
    exercise_keys: list[str] | None = None,
) -> dict[str, Any]:
    """A realistic context without a patient, for ``templates check`` and ``preview`` (first SMS, day 1).

    ``exercise_keys``: the plan's picked exercises; None: the library's first two (``[]``: none picked)."""
    return _context(
        clinic=dict(SAMPLE_CLINIC),
        first_name=SAMPLE_FIRST_NAMES.get(babel_locale(locale).language, SAMPLE_FIRST_NAMES["en"]),
        tz=SAMPLE_TZ,
        locale=locale,
        start=SAMPLE_START,
        end=SAMPLE_START + timedelta(minutes=45),
        # A staff reply's text travels in its step (engage.delivery.staff_replies); a typical one as the sample.
        step={"body": SAMPLE_STAFF_REPLY, **(step if step is not None else {"day": 1})},
        first_sms=True,
        patient_id=0,
        message_id=0,
        channel=channel,
        preview=True,
        exercise_keys=list(load_exercises())[:2] if exercise_keys is None else exercise_keys,
        pain_scores=[7, 6, 4, 3] if channel == Channel.EMAIL.value else None,
    )


def _next_appointment(session: Session, patient_id: int) -> Appointment | None:
    return session.scalars(
        select(Appointment)
        .join(TreatmentPlan, TreatmentPlan.id == Appointment.plan_id)
        .where(
            TreatmentPlan.patient_id == patient_id,
            Appointment.status == AppointmentStatus.BOOKED,
            Appointment.start_at >= utcnow(),
        )
        .order_by(Appointment.start_at)
        .limit(1)
    ).first()


def patient_preview_context(
    session: Session, patient: Patient, channel: str, *, step: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A context from a real patient, as if their next booked appointment's message went out now.

    Without a future appointment, one two days from now at 10:30 local stands in.
    Shown as the first SMS of an enrollment (with the STOP line).
    """
    clinic = patient.clinic
    tz = patient.effective_timezone
    appointment = _next_appointment(session, patient.id)
    if appointment is not None:
        start, end = appointment.start_at, appointment.end_at
    else:
        day = utcnow().astimezone(ZoneInfo(tz)).date() + timedelta(days=2)
        start = datetime.combine(day, time(10, 30), tzinfo=ZoneInfo(tz))
        end = start + timedelta(minutes=45)
    return _context(
        clinic=_clinic_of(clinic, channel),
        first_name=patient.first_name,
        tz=tz,
        locale=patient.locale or DEFAULT_LOCALE,
        start=start,
        end=end,
        step=dict(step) if step is not None else {"day": 1},
        first_sms=True,
        patient_id=patient.id,
        message_id=0,
        channel=channel,
        preview=True,
        exercise_keys=_latest_exercises(patient),
    )


def _latest_exercises(patient: Patient) -> list[str]:
    """The exercises of the patient's newest plan (what a stretch prompt would show them now)."""
    plans = list(patient.plans)
    return list(plans[-1].exercises or ()) if plans else []


def planned_preview_context(
    session: Session,
    patient: Patient,
    plan: TreatmentPlan,
    appointment: Appointment | None,
    channel: str,
    *,
    step: dict[str, Any],
    first_sms: bool,
) -> dict[str, Any]:
    """A context for a message planning would make for ``plan`` (not written yet): its real appointment,
    step and patient, with preview links (for the sequence editor's preview on a real patient)."""
    return _context(
        clinic=_clinic_of(patient.clinic, channel),
        first_name=patient.first_name,
        tz=patient.effective_timezone,
        locale=patient.locale or DEFAULT_LOCALE,
        start=appointment.start_at if appointment else None,
        end=appointment.end_at if appointment else None,
        step=dict(step),
        first_sms=channel == Channel.SMS.value and first_sms,
        patient_id=patient.id,
        message_id=0,
        channel=channel,
        preview=True,
        plan_id=plan.id,
        exercise_keys=list(plan.exercises or ()),
        pain_scores=_pain_scores(session, patient.id) if channel == Channel.EMAIL.value else None,
    )
