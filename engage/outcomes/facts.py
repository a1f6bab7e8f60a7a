"""Each enrollment's episode facts computed by the database, so a clinic's figures never load every score.

:func:`episode_rows` answers one row per enrollment in scope: its sessions (first start and end, last start),
baseline, follow-up count, latest score and time, the time of the first follow-up meeting the MCID, and the
sessions begun by then and by the latest. :func:`pain_histogram` counts scores by sessions begun and value
(the chart's quartiles come exactly from the counts), and :func:`prompt_rows` each enrollment's prompts.
The definitions are those of :mod:`engage.outcomes.episodes`, whose pure :func:`~engage.outcomes.episodes.compute`
is the reference the tests hold this against. Times are compared as seconds since the epoch, computed the
same way on both backends (PostgreSQL ``extract(epoch ...)``, SQLite ``julianday``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Select, and_, case, cast, extract, func, literal, or_, select, union_all
from sqlalchemy.orm import Session

from engage.outcomes.episodes import ANSWER_WITHIN, BASELINE_BEFORE, FOLLOW_UP_AFTER_LAST, MCID_POINTS, MCID_SHARE
from engage.records.models import (
    Appointment,
    AppointmentStatus,
    Enrollment,
    Measure,
    Message,
    MessageStatus,
    Outcome,
    Patient,
    TreatmentPlan,
)

REASSESSMENT = "reassessment"
_SENT = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNKNOWN)


def epoch(session: Session, column: Any) -> Any:
    """``column`` (a UTC timestamp) as float seconds since 1970 on this session's backend."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(column) - 2440587.5) * 86400.0
    return cast(extract("epoch", column), Float)


def _sessions(session: Session, clinic_id: int) -> Any:
    at = epoch(session, Appointment.start_at)
    return (
        select(
            Appointment.plan_id.label("plan_id"),
            func.min(at).label("first_start"),
            func.min(epoch(session, Appointment.end_at)).label("first_end"),
            func.max(at).label("last_start"),
            func.min(Appointment.practitioner_id).label("visit_practitioner"),
        )
        .join(TreatmentPlan, TreatmentPlan.id == Appointment.plan_id)
        .join(Patient, Patient.id == TreatmentPlan.patient_id)
        .where(Patient.clinic_id == clinic_id, Appointment.status != AppointmentStatus.CANCELLED)
        .group_by(Appointment.plan_id)
        .subquery("s")
    )


@dataclass(frozen=True)
class Scope:
    """Which enrollments: ``where`` on enrollment and plan columns, the practitioner (the plan's, else the one
    on its visits), and the first session's start from ``after`` to before ``before`` (epoch seconds)."""

    where: tuple[Any, ...] = ()
    practitioner_id: int | None = None
    after: float | None = None
    before: float | None = None


def base_query(session: Session, clinic_id: int, scope: Scope) -> Any:
    """Enrollments in scope with their sessions and baseline (a materialized CTE ``b``)."""
    s = _sessions(session, clinic_id)
    practitioner = func.coalesce(TreatmentPlan.practitioner_id, s.c.visit_practitioner)
    where = list(scope.where)
    if scope.practitioner_id is not None:
        where.append(practitioner == scope.practitioner_id)
    if scope.after is not None:
        where.append(s.c.first_start >= scope.after)
    if scope.before is not None:
        where.append(s.c.first_start < scope.before)
    o = Outcome.__table__.alias("ob")
    at = epoch(session, o.c.recorded_at)
    baseline = (
        select(o.c.score)
        .where(
            o.c.patient_id == Enrollment.patient_id,
            o.c.measure == Measure.NPRS.value,
            at >= s.c.first_start - BASELINE_BEFORE.total_seconds(),
            at <= s.c.first_end,
        )
        .order_by(o.c.recorded_at.desc(), o.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return (
        select(
            Enrollment.id.label("enrollment_id"),
            Enrollment.patient_id.label("patient_id"),
            Enrollment.plan_id.label("plan_id"),
            Enrollment.sequence_key.label("sequence_key"),
            Enrollment.status.label("status"),
            practitioner.label("practitioner_id"),
            s.c.first_start,
            s.c.first_end,
            s.c.last_start,
            baseline.label("baseline"),
        )
        .join(TreatmentPlan, TreatmentPlan.id == Enrollment.plan_id)
        .join(Patient, Patient.id == Enrollment.patient_id)
        .join(s, s.c.plan_id == Enrollment.plan_id)
        .where(Patient.clinic_id == clinic_id, *where)
        # Computed once: inlined, the baseline's subquery would run again for every score joined to it.
        .cte("b")
        .prefix_with("MATERIALIZED")
    )


def _follow_ups(session: Session, b: Any) -> Select[Any]:
    o = Outcome.__table__.alias("of")
    at = epoch(session, o.c.recorded_at)
    fall = b.c.baseline - o.c.score
    meets = and_(b.c.baseline > 0, fall >= MCID_POINTS, fall >= MCID_SHARE * b.c.baseline - 1e-9)
    return (
        select(
            b.c.enrollment_id.label("enrollment_id"),
            func.count().label("follow_ups"),
            func.max(at).label("latest_at"),
            func.min(case((meets, at))).label("mcid_at"),
        )
        .join(o, o.c.patient_id == b.c.patient_id)
        .where(
            b.c.baseline.is_not(None),
            o.c.measure == Measure.NPRS.value,
            at > b.c.first_end,
            at <= b.c.last_start + FOLLOW_UP_AFTER_LAST.total_seconds(),
        )
        .group_by(b.c.enrollment_id)
    )


def _begun(session: Session, plan_id: Any, moment: Any) -> Any:
    """Sessions (not cancelled) of the plan that started at or before ``moment`` (epoch seconds)."""
    return (
        select(func.count())
        .where(
            Appointment.plan_id == plan_id,
            Appointment.status != AppointmentStatus.CANCELLED,
            epoch(session, Appointment.start_at) <= moment,
        )
        .scalar_subquery()
    )


def episode_rows(session: Session, clinic_id: int, scope: Scope) -> list[Any]:
    """One row per enrollment in scope (see the module docstring), in enrollment order."""
    b = base_query(session, clinic_id, scope)
    f = _follow_ups(session, b).subquery("f")
    o = Outcome.__table__.alias("ol")
    latest = (
        select(o.c.score)
        .where(
            o.c.patient_id == b.c.patient_id,
            o.c.measure == Measure.NPRS.value,
            epoch(session, o.c.recorded_at) == f.c.latest_at,
        )
        .order_by(o.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(
            b,
            func.coalesce(f.c.follow_ups, 0).label("follow_ups"),
            f.c.latest_at,
            f.c.mcid_at,
            case((f.c.latest_at.is_not(None), latest)).label("latest"),
            case((f.c.mcid_at.is_not(None), _begun(session, b.c.plan_id, f.c.mcid_at))).label("mcid_sessions"),
            case((f.c.latest_at.is_not(None), _begun(session, b.c.plan_id, f.c.latest_at))).label("latest_sessions"),
        )
        .outerjoin(f, f.c.enrollment_id == b.c.enrollment_id)
        .order_by(b.c.enrollment_id)
    )
    return list(session.execute(query).all())


def pain_histogram(session: Session, clinic_id: int, scope: Scope) -> list[Any]:
    """(sessions begun, score, count) over the baselines and follow-ups of the episodes in scope."""
    b = base_query(session, clinic_id, scope)
    o = Outcome.__table__.alias("oh")
    at = epoch(session, o.c.recorded_at)
    scores = (
        select(b.c.plan_id.label("plan_id"), at.label("at"), o.c.score.label("score"), literal(0).label("visit"))
        .join(o, o.c.patient_id == b.c.patient_id)
        .where(
            b.c.baseline.is_not(None),
            o.c.measure == Measure.NPRS.value,
            or_(
                and_(at > b.c.first_end, at <= b.c.last_start + FOLLOW_UP_AFTER_LAST.total_seconds()),
                and_(at >= b.c.first_start - BASELINE_BEFORE.total_seconds(), at <= b.c.first_end),
            ),
        )
    )
    visits = (
        select(
            Appointment.plan_id.label("plan_id"),
            epoch(session, Appointment.start_at).label("at"),
            literal(None).label("score"),
            literal(1).label("visit"),
        )
        .join(b, b.c.plan_id == Appointment.plan_id)
        .where(b.c.baseline.is_not(None), Appointment.status != AppointmentStatus.CANCELLED)
    )
    events = union_all(scores, visits).subquery("events")
    begun = (
        func.sum(events.c.visit)
        .over(partition_by=events.c.plan_id, order_by=(events.c.at, events.c.visit.desc()))
        .label("begun")
    )
    numbered = select(events.c.score, events.c.visit, begun).subquery("numbered")
    return list(
        session.execute(
            select(numbered.c.begun, numbered.c.score, func.count())
            .where(numbered.c.visit == 0)
            .group_by(numbered.c.begun, numbered.c.score)
        ).all()
    )


def _prompts(session: Session, clinic_id: int, b: Any) -> Any:
    first_answer = (
        select(Outcome.prompt_message_id.label("id"), func.min(Outcome.recorded_at).label("at"))
        .where(Outcome.prompt_message_id.is_not(None))
        .group_by(Outcome.prompt_message_id)
        .subquery()
    )
    sent = epoch(session, func.coalesce(Message.sent_at, Message.handed_at, Message.due_at))
    answered = epoch(session, first_answer.c.at)
    return (
        select(
            Message.enrollment_id.label("enrollment_id"),
            Message.channel.label("channel"),
            sent.label("sent"),
            case((first_answer.c.at.is_(None), 0), else_=1).label("answered"),
            case(
                (and_(first_answer.c.at.is_not(None), answered - sent <= ANSWER_WITHIN.total_seconds()), 1), else_=0
            ).label("in_time"),
        )
        .join(b, b.c.enrollment_id == Message.enrollment_id)
        .outerjoin(first_answer, first_answer.c.id == Message.id)
        .where(Message.template == REASSESSMENT, Message.status.in_(_SENT))
        .subquery("prompts")
    )


def prompt_facts(session: Session, clinic_id: int, scope: Scope, now: float) -> tuple[list[Any], dict[int, int]]:
    """Per channel (channel, prompts sent, answered within 72 h) over the enrollments in scope, and enrollment
    id -> how many of its latest prompts went unanswered in a row (prompts still inside their 72 hours, and
    unanswered, are not counted either way; only enrollments with 2 or more)."""
    b = base_query(session, clinic_id, scope)
    p = _prompts(session, clinic_id, b)
    rates = list(session.execute(select(p.c.channel, func.count(), func.sum(p.c.in_time)).group_by(p.c.channel)).all())
    decided = or_(p.c.answered == 1, p.c.sent <= now - ANSWER_WITHIN.total_seconds())
    rank = func.row_number().over(partition_by=p.c.enrollment_id, order_by=p.c.sent.desc()).label("rn")
    ranked = select(p.c.enrollment_id, p.c.answered, rank).where(decided).subquery("ranked")
    streaks: dict[int, int] = {}
    for enrollment_id, total, first_answered in session.execute(
        select(ranked.c.enrollment_id, func.count(), func.min(case((ranked.c.answered == 1, ranked.c.rn)))).group_by(
            ranked.c.enrollment_id
        )
    ):
        run = (first_answered - 1) if first_answered is not None else total
        if run >= 2:
            streaks[enrollment_id] = int(run)
    return rates, streaks
