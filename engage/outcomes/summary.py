"""The clinic-wide outcome summary: load a clinic's enrollments, sessions, pain scores and prompts in a few
statements, compute each episode (:mod:`engage.outcomes.episodes`) and the figures (:mod:`engage.outcomes.figures`).

The CLI (``engage outcomes summary``), the API (``GET /api/v1/outcomes/summary``) and the Outcomes page all call
:func:`outcome_summary`, so they answer the same figures under the same keys.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.errors import InvalidInput
from engage.outcomes import figures
from engage.outcomes.episodes import Episode, EpisodeInput, Prompt, Score, compute
from engage.records.lookup import get
from engage.records.models import (
    Appointment,
    AppointmentStatus,
    Clinic,
    Enrollment,
    EnrollmentStatus,
    Measure,
    Message,
    MessageStatus,
    Outcome,
    Patient,
    Practitioner,
    TreatmentPlan,
)

REASSESSMENT = "reassessment"
_SENT = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNKNOWN)


@dataclass(frozen=True)
class Filters:
    """Which episodes: first session from ``start`` to ``end`` (local dates, inclusive), and exact matches."""

    start: date | None = None
    end: date | None = None
    practitioner_id: int | None = None
    sequence: str | None = None
    condition: str | None = None
    modality: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "practitioner": self.practitioner_id,
            "sequence": self.sequence,
            "condition": self.condition,
            "modality": self.modality,
        }


def parse_filters(
    *,
    start: str | None = None,
    end: str | None = None,
    practitioner: str | int | None = None,
    sequence: str | None = None,
    condition: str | None = None,
    modality: str | None = None,
) -> Filters:
    """Filters from text (query strings, CLI options); ``InvalidInput`` naming ``from``, ``to`` or
    ``practitioner`` for a date that is not YYYY-MM-DD, ``from`` after ``to``, or a practitioner id that is not
    a number. Empty text means no filter."""

    def day(value: str | None, name: str) -> date | None:
        if not value or not value.strip():
            return None
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(f"{name} is a date like 2026-12-01", field=name) from None

    first, last = day(start, "from"), day(end, "to")
    if first and last and first > last:
        raise InvalidInput("from is after to", field="from")
    who: int | None = None
    if practitioner is not None and str(practitioner).strip():
        try:
            who = int(str(practitioner).strip())
        except ValueError:
            raise InvalidInput("practitioner is a practitioner id (a number)", field="practitioner") from None
    return Filters(
        first,
        last,
        who,
        (sequence or "").strip() or None,
        (condition or "").strip() or None,
        (modality or "").strip() or None,
    )


def load_episodes(
    session: Session, clinic_id: int, filters: Filters, now: datetime | None = None
) -> tuple[list[Episode], dict[int, str]]:
    """The clinic's enrollments matching ``filters``, computed; and practitioner id -> name."""
    clinic: Clinic = get(session, Clinic, clinic_id)
    tz = ZoneInfo(clinic.timezone)
    now = now or utcnow()
    names: dict[int, str] = {
        row.id: row.name
        for row in session.execute(
            select(Practitioner.id, Practitioner.name).where(Practitioner.clinic_id == clinic_id)
        )
    }
    if filters.practitioner_id is not None and filters.practitioner_id not in names:
        raise InvalidInput(f"no practitioner with id {filters.practitioner_id} in this clinic", field="practitioner")
    query = (
        select(
            Enrollment.id,
            Enrollment.patient_id,
            Enrollment.plan_id,
            Enrollment.sequence_key,
            Enrollment.status,
            TreatmentPlan.practitioner_id,
            TreatmentPlan.condition,
            TreatmentPlan.modality,
        )
        .join(TreatmentPlan, TreatmentPlan.id == Enrollment.plan_id)
        .join(Patient, Patient.id == Enrollment.patient_id)
        .where(Patient.clinic_id == clinic_id)
    )
    if filters.sequence:
        query = query.where(Enrollment.sequence_key == filters.sequence)
    if filters.condition:
        query = query.where(func.lower(TreatmentPlan.condition) == filters.condition.lower())
    if filters.modality:
        query = query.where(func.lower(TreatmentPlan.modality) == filters.modality.lower())
    enrollments = session.execute(query).all()
    if not enrollments:
        return [], names

    sessions: dict[int, list[tuple[datetime, datetime, int | None]]] = defaultdict(list)
    for plan_id, start, end, practitioner_id in session.execute(
        select(Appointment.plan_id, Appointment.start_at, Appointment.end_at, Appointment.practitioner_id)
        .join(TreatmentPlan, TreatmentPlan.id == Appointment.plan_id)
        .join(Patient, Patient.id == TreatmentPlan.patient_id)
        .where(Patient.clinic_id == clinic_id, Appointment.status != AppointmentStatus.CANCELLED)
        .order_by(Appointment.plan_id, Appointment.start_at)
    ):
        sessions[plan_id].append((start, end, practitioner_id))
    scores: dict[int, list[Score]] = defaultdict(list)
    for patient_id, at, score in session.execute(
        select(Outcome.patient_id, Outcome.recorded_at, Outcome.score)
        .join(Patient, Patient.id == Outcome.patient_id)
        .where(Patient.clinic_id == clinic_id, Outcome.measure == Measure.NPRS)
    ):
        scores[patient_id].append(Score(at, score))
    prompts = _prompts(session, clinic_id)

    episodes: list[Episode] = []
    for enrollment_id, patient_id, plan_id, sequence_key, status, plan_practitioner, condition, modality in enrollments:
        visits = sessions.get(plan_id)
        if not visits:
            continue
        practitioner_id = plan_practitioner if plan_practitioner is not None else visits[0][2]
        if filters.practitioner_id is not None and practitioner_id != filters.practitioner_id:
            continue
        first_day = visits[0][0].astimezone(tz).date()
        if (filters.start and first_day < filters.start) or (filters.end and first_day > filters.end):
            continue
        data = EpisodeInput(
            enrollment_id=enrollment_id,
            patient_id=patient_id,
            sessions=tuple(v[0] for v in visits),
            first_end=visits[0][1],
            scores=tuple(scores.get(patient_id, ())),
            prompts=tuple(prompts.get(enrollment_id, ())),
            practitioner_id=practitioner_id,
            sequence_key=sequence_key,
            condition=condition,
            modality=modality,
            active=status in (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED),
        )
        episodes.append(compute(data, now))
    return episodes, names


def _prompts(session: Session, clinic_id: int) -> dict[int, list[Prompt]]:
    """Enrollment id -> its reassessment prompts that went out, each with its first answer's time."""
    first_answer = (
        select(Outcome.prompt_message_id.label("id"), func.min(Outcome.recorded_at).label("at"))
        .where(Outcome.prompt_message_id.is_not(None))
        .group_by(Outcome.prompt_message_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Message.enrollment_id,
            Message.channel,
            func.coalesce(Message.sent_at, Message.handed_at, Message.due_at),
            first_answer.c.at,
        )
        .join(Patient, Patient.id == Message.patient_id)
        .outerjoin(first_answer, first_answer.c.id == Message.id)
        .where(Patient.clinic_id == clinic_id, Message.template == REASSESSMENT, Message.status.in_(_SENT))
    )
    found: dict[int, list[Prompt]] = defaultdict(list)
    for enrollment_id, channel, sent_at, answered_at in rows:
        found[enrollment_id].append(Prompt(sent_at, channel.value, answered_at))
    return found


def outcome_summary(
    session: Session,
    clinic_id: int,
    filters: Filters | None = None,
    now: datetime | None = None,
    *,
    with_names: bool = False,
) -> dict[str, Any]:
    """The clinic's figures (the clinic row's keys at the top level), ``by_practitioner`` and ``by_sequence``
    rows (small cells pooled), ``response_rate`` per channel, ``act_on``, the chart series and the sources.

    ``with_names``: each ``act_on`` entry also carries the patient's name (for the staff page; the API and the
    CLI answer ids). Raises ``InvalidInput`` for a practitioner of another clinic, ``NotFound`` for an unknown
    clinic.
    """
    filters = filters or Filters()
    episodes, names = load_episodes(session, clinic_id, filters, now)
    tz = ZoneInfo(get(session, Clinic, clinic_id).timezone)
    act_on = figures.act_on(episodes)
    if with_names and act_on:
        people = {
            row.id: f"{row.first_name} {row.last_name}"
            for row in session.execute(
                select(Patient.id, Patient.first_name, Patient.last_name).where(
                    Patient.id.in_({r["patient_id"] for r in act_on})
                )
            )
        }
        for entry in act_on:
            entry["patient"] = people.get(entry["patient_id"], "")
    return {
        "clinic_id": clinic_id,
        "filters": filters.as_dict(),
        **figures.row(episodes),
        "by_practitioner": figures.grouped(episodes, lambda e: e.practitioner_id, names, "No practitioner named"),
        "by_sequence": figures.grouped(episodes, lambda e: e.sequence_key, {}, "No sequence"),
        "response_rate": figures.response_rates(episodes),
        "act_on": act_on,
        "pain_by_session": figures.pain_by_session(episodes),
        "responders_by_month": figures.responders_by_month(
            episodes, lambda e: e.first_session.astimezone(tz).strftime("%Y-%m")
        ),
        "sources": figures.SOURCES,
    }
