"""Enrollments' episode facts computed by the database, so a clinic's figures never load every score.

:func:`compute` answers one row per enrollment asked for: its sessions (first start and end, last start),
baseline, follow-up count, latest score and time, the time of the first follow-up meeting the MCID, and the
sessions begun by then and by the latest, with each enrollment's scores counted by sessions begun and value
(the chart's quartiles come exactly from the counts); :mod:`engage.outcomes.stored_facts` keeps them.
:func:`prompt_facts` answers the prompts' response rates and unanswered runs (they depend on the time of asking);
:func:`prompts_of` is what the stored facts keep of them, and :func:`unanswered_run` the run read from that.
The definitions are those of :mod:`engage.outcomes.episodes`, whose pure :func:`~engage.outcomes.episodes.compute`
is the reference the tests hold this against. Times are compared as seconds since the epoch, computed the
same way on both backends (PostgreSQL ``extract(epoch ...)``, SQLite ``julianday``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Float, Integer, and_, case, cast, func, literal, or_, select, union_all
from sqlalchemy.orm import Session

from engage.outcomes.episodes import ANSWER_WITHIN, BASELINE_BEFORE, FOLLOW_UP_AFTER_LAST, MCID_POINTS, MCID_SHARE
from engage.records.models import (
    Appointment,
    AppointmentStatus,
    Channel,
    Enrollment,
    Measure,
    Message,
    MessageStatus,
    Outcome,
)

REASSESSMENT = "reassessment"
_SENT = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNKNOWN)


def epoch(session: Session, column: Any) -> Any:
    """``column`` (a UTC timestamp) as float seconds since 1970 on this session's backend."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(column) - 2440587.5) * 86400.0
    # date_part answers float8 directly; extract answers numeric (exact, and slower by half over 200,000 rows),
    # whose cast to float8 is the same number.
    return func.date_part("epoch", column, type_=Float)


def tuples(session: Session, query: Any) -> Sequence[tuple[Any, ...]]:
    """The rows of ``query`` as plain tuples, read the cheapest way: on PostgreSQL in the binary format (numbers
    arrive as numbers: reading 20,000 fact rows costs a third of the CPU of parsing their text), elsewhere as
    Core rows (not through the ORM's loading, which doubles the CPU for the same tuples). ``query``'s bound
    values must be plain ones (numbers, text, None): they go to the driver as they are."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return connection.execute(query).all()
    compiled = query.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    assert all(v is None or isinstance(v, (int, float, str)) for v in params.values()), "plain values only"
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(compiled.string, params, binary=True)
        return cursor.fetchall()
    finally:
        cursor.close()


def _sessions(session: Session, plans: Any) -> Any:
    # The extremes of the timestamps, then their epoch seconds (the same: the conversion keeps the order).
    return (
        select(
            Appointment.plan_id.label("plan_id"),
            epoch(session, func.min(Appointment.start_at)).label("first_start"),
            epoch(session, func.min(Appointment.end_at)).label("first_end"),
            epoch(session, func.max(Appointment.start_at)).label("last_start"),
            func.min(Appointment.practitioner_id).label("visit_practitioner"),
        )
        .where(Appointment.plan_id.in_(plans), Appointment.status != AppointmentStatus.CANCELLED)
        .group_by(Appointment.plan_id)
        .subquery("s")
    )


def _chosen(session: Session, enrollment_ids: Sequence[int]) -> Any:
    """The enrollments ``enrollment_ids`` that have a visit not cancelled, with their sessions (first start
    and end, last start) and the first practitioner named on those visits."""
    s = _sessions(session, select(Enrollment.plan_id).where(Enrollment.id.in_(enrollment_ids)))
    return (
        select(
            Enrollment.id.label("enrollment_id"),
            Enrollment.patient_id.label("patient_id"),
            Enrollment.plan_id.label("plan_id"),
            s.c.visit_practitioner,
            s.c.first_start,
            s.c.first_end,
            s.c.last_start,
        )
        .join(s, s.c.plan_id == Enrollment.plan_id)
        .where(Enrollment.id.in_(enrollment_ids))
        .cte("b")
    )


def _events(session: Session, b: Any) -> Any:
    """Every enrollment's baseline-window scores (``kind`` 0) and follow-ups (``kind`` 1), in one pass over the
    scores and one over the visits, each with ``begun`` (sessions started at or before it), ``rn`` (1: the
    newest of its kind, ties to the higher id) and the enrollment's ``baseline`` (the newest of kind 0)."""
    o = Outcome.__table__.alias("o")
    at = epoch(session, o.c.recorded_at)
    in_baseline = and_(at >= b.c.first_start - BASELINE_BEFORE.total_seconds(), at <= b.c.first_end)
    scores = (
        select(
            b.c.enrollment_id,
            at.label("at"),
            o.c.score.label("score"),
            o.c.id.label("score_id"),
            case((in_baseline, 0), else_=1).label("kind"),
            literal(0).label("visit"),
        )
        .join(o, o.c.patient_id == b.c.patient_id)
        .where(
            o.c.measure == Measure.NPRS.value,
            or_(in_baseline, and_(at > b.c.first_end, at <= b.c.last_start + FOLLOW_UP_AFTER_LAST.total_seconds())),
        )
    )
    visits = (
        select(
            b.c.enrollment_id,
            epoch(session, Appointment.start_at).label("at"),
            literal(None).label("score"),
            literal(None).label("score_id"),
            literal(2).label("kind"),
            literal(1).label("visit"),
        )
        .join(b, b.c.plan_id == Appointment.plan_id)
        .where(Appointment.status != AppointmentStatus.CANCELLED)
    )
    events = union_all(scores, visits).subquery("events")
    ranked = select(
        events,
        func.sum(events.c.visit)
        .over(partition_by=events.c.enrollment_id, order_by=(events.c.at, events.c.visit.desc()))
        .label("begun"),
        func.row_number()
        .over(
            partition_by=(events.c.enrollment_id, events.c.kind),
            order_by=(events.c.at.desc(), events.c.score_id.desc()),
        )
        .label("rn"),
    ).subquery("ranked")
    newest_baseline = case((and_(ranked.c.kind == 0, ranked.c.rn == 1), ranked.c.score))
    with_baseline = select(
        ranked, func.max(newest_baseline).over(partition_by=ranked.c.enrollment_id).label("baseline")
    ).subquery("with_baseline")
    return (
        select(with_baseline).where(with_baseline.c.kind != 2, with_baseline.c.baseline.is_not(None)).subquery("scored")
    )


class Computed(NamedTuple):
    """One enrollment's facts as the database computed them (times in epoch seconds)."""

    enrollment_id: int
    visit_practitioner: int | None
    first_start: float
    first_end: float
    last_start: float
    baseline: int | None
    follow_ups: int
    latest_at: float | None
    latest: int | None
    latest_sessions: int | None
    mcid_at: float | None
    mcid_sessions: int | None


def compute(session: Session, enrollment_ids: Sequence[int]) -> tuple[list[Computed], list[tuple[int, int, int, int]]]:
    """The facts of those of ``enrollment_ids`` with a visit not cancelled (see the module docstring), and the
    pain chart's counts per enrollment: (enrollment id, sessions begun, score, how many) over the baseline-window
    scores and follow-ups of the enrollments with a baseline.

    One statement: the scores and visits are read, sorted and numbered once (:func:`_events`), then grouped
    both by enrollment and by (enrollment, sessions begun, score)."""
    if not enrollment_ids:
        return [], []
    b = _chosen(session, enrollment_ids)
    e = _events(session, b).element.cte("scored")
    if session.get_bind().dialect.name == "postgresql":
        e = e.prefix_with("MATERIALIZED")  # read twice below: computed once
    follow_up = e.c.kind == 1
    newest = and_(follow_up, e.c.rn == 1)
    fall = e.c.baseline - e.c.score
    meets = and_(follow_up, e.c.baseline > 0, fall >= MCID_POINTS, fall >= MCID_SHARE * e.c.baseline - 1e-9)
    nothing_int, nothing_float = cast(literal(None), Integer), cast(literal(None), Float)
    per_enrollment = (
        select(
            b.c.enrollment_id,
            literal(1).label("whole"),
            func.max(e.c.baseline).label("baseline"),
            func.coalesce(func.sum(case((follow_up, 1), else_=0)), 0).label("follow_ups"),
            func.max(case((follow_up, e.c.at))).label("latest_at"),
            func.max(case((newest, e.c.score))).label("latest"),
            func.max(case((newest, e.c.begun))).label("latest_sessions"),
            func.min(case((meets, e.c.at))).label("mcid_at"),
            func.min(case((meets, e.c.begun))).label("mcid_sessions"),
            nothing_int.label("begun"),
            nothing_int.label("score"),
            nothing_int.label("count"),
        )
        .outerjoin(e, e.c.enrollment_id == b.c.enrollment_id)
        .group_by(b.c.enrollment_id)
    )
    histogram = select(
        e.c.enrollment_id,
        literal(0),
        nothing_int,
        nothing_int,
        nothing_float,
        nothing_int,
        nothing_int,
        nothing_float,
        nothing_int,
        e.c.begun,
        e.c.score,
        func.count(),
    ).group_by(e.c.enrollment_id, e.c.begun, e.c.score)
    g = union_all(per_enrollment, histogram).subquery("g")
    query = (
        select(
            g.c.enrollment_id,
            b.c.visit_practitioner,
            b.c.first_start,
            b.c.first_end,
            b.c.last_start,
            *(g.c[name] for name in Computed._fields[5:]),
            g.c.whole,
            g.c.begun,
            g.c.score,
            g.c.count,
        )
        .select_from(g)
        .join(b, b.c.enrollment_id == g.c.enrollment_id)
        .order_by(g.c.enrollment_id, g.c.begun, g.c.score)
    )
    width = len(Computed._fields)
    rows: list[Computed] = []
    counts: list[tuple[int, int, int, int]] = []
    for row in session.execute(query):
        if row[width]:
            rows.append(Computed._make(row[:width]))
        else:
            counts.append((row[0], row[width + 1], row[width + 2], row[width + 3]))
    return rows, counts


def _sent(session: Session) -> Any:
    """When a prompt went out, in epoch seconds: sent, else handed to the provider, else due."""
    return epoch(session, func.coalesce(Message.sent_at, Message.handed_at, Message.due_at))


#: The prompts the figures count: reassessment prompts that went out (sent, delivered or unknown).
_COUNTED = (Message.template == REASSESSMENT, Message.status.in_(_SENT))


def _prompts(session: Session, b: Any) -> Any:
    first_answer = (
        select(Outcome.prompt_message_id.label("id"), func.min(Outcome.recorded_at).label("at"))
        .where(Outcome.prompt_message_id.is_not(None))
        .group_by(Outcome.prompt_message_id)
        .subquery()
    )
    sent = _sent(session)
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
        .where(*_COUNTED)
        .subquery("prompts")
    )


def prompt_facts(session: Session, b: Any, now: float) -> tuple[list[Any], dict[int, int]]:
    """Per channel (channel, prompts sent, answered within 72 h) over the enrollments of ``b`` (a selectable
    with an ``enrollment_id`` column), and enrollment
    id -> how many of its latest prompts went unanswered in a row (prompts still inside their 72 hours, and
    unanswered, are not counted either way; only enrollments with 2 or more). One statement: the prompts in
    scope are found once, then grouped by channel and by enrollment (the CSV's episodes; the outcome summary
    reads the counts stored by :func:`prompts_of` instead)."""
    p = _prompts(session, b).element.cte("prompts")
    if session.get_bind().dialect.name == "postgresql":
        p = p.prefix_with("MATERIALIZED")  # read twice below: computed once
    decided = or_(p.c.answered == 1, p.c.sent <= now - ANSWER_WITHIN.total_seconds())
    # Prompts sent at the same moment as an answered one are not after it: the answered one ranks first.
    newest_first = (p.c.sent.desc(), p.c.answered.desc())
    rank = func.row_number().over(partition_by=p.c.enrollment_id, order_by=newest_first).label("rn")
    ranked = select(p.c.enrollment_id, p.c.answered, rank).where(decided).subquery("ranked")
    by_channel = select(
        cast(literal(None), Integer).label("enrollment_id"),
        p.c.channel,
        func.count().label("total"),
        func.coalesce(func.sum(p.c.in_time), 0).label("number"),
    ).group_by(p.c.channel)
    first_answered = func.min(case((ranked.c.answered == 1, ranked.c.rn)))
    by_enrollment = (
        select(ranked.c.enrollment_id, cast(literal(None), p.c.channel.type), func.count(), first_answered)
        .group_by(ranked.c.enrollment_id)
        # Only runs of 2 or more: the newest answered is the 3rd or older, or none of 2 or more was answered.
        .having(func.coalesce(first_answered, func.count() + 1) >= 3)
    )
    rates: list[Any] = []
    streaks: dict[int, int] = {}
    for enrollment_id, channel, total, number in tuples(session, union_all(by_channel, by_enrollment)):
        if enrollment_id is None:
            rates.append((channel, total, number))
            continue
        run = (number - 1) if number is not None else total
        if run >= 2:
            streaks[enrollment_id] = int(run)
    return rates, streaks


class Prompts(NamedTuple):
    """One enrollment's reassessment prompts as stored with its facts: sent and answered within 72 h by channel,
    and the times sent (epoch seconds, oldest first; None: none) of the unanswered ones after its newest answered
    prompt: those whose 72 hours are over make its run of unanswered prompts (:func:`unanswered_run`)."""

    prompts_sms: int = 0
    in_time_sms: int = 0
    prompts_email: int = 0
    in_time_email: int = 0
    unanswered_sent: list[float] | None = None


def prompts_of(session: Session, enrollment_ids: Sequence[int]) -> dict[int, Prompts]:
    """The :class:`Prompts` of those of ``enrollment_ids`` with a prompt sent, as :func:`prompt_facts` counts them
    (one row per prompt, its first answer found through the answers' index: this runs for the enrollments whose
    facts are stale, often one, so it reads only their prompts' answers, not every answer's)."""
    if not enrollment_ids:
        return {}
    sent = _sent(session)
    query = (
        select(Message.enrollment_id, Message.channel, sent, epoch(session, func.min(Outcome.recorded_at)))
        .outerjoin(Outcome, Outcome.prompt_message_id == Message.id)
        .where(Message.enrollment_id.in_(enrollment_ids), *_COUNTED)
        .group_by(Message.id)
        .order_by(sent)
    )
    found: dict[int, list[tuple[float, str, float | None]]] = {}
    for enrollment_id, channel, sent_at, answered_at in session.execute(query):
        found.setdefault(enrollment_id, []).append((sent_at, channel, answered_at))
    within = ANSWER_WITHIN.total_seconds()
    answer: dict[int, Prompts] = {}
    for enrollment_id, prompts in found.items():
        counts: dict[str, list[int]] = {channel: [0, 0] for channel in Channel}
        newest_answered = None
        for sent_at, channel, answered_at in prompts:
            counts[channel][0] += 1
            if answered_at is not None:
                newest_answered = sent_at
                counts[channel][1] += answered_at - sent_at <= within
        waiting = [
            sent_at
            for sent_at, _, answered_at in prompts
            if answered_at is None and (newest_answered is None or sent_at > newest_answered)
        ]
        sms, email = counts[Channel.SMS], counts[Channel.EMAIL]
        answer[enrollment_id] = Prompts(sms[0], sms[1], email[0], email[1], waiting or None)
    return answer


def unanswered_run(session: Session, times: Any, now: float) -> Any:
    """How many of ``times`` (a stored ``unanswered_sent`` column) are over their 72 hours at ``now``: the
    enrollment's run of unanswered prompts, as :func:`prompt_facts` counts it (0 for None)."""
    cutoff = now - ANSWER_WITHIN.total_seconds()
    if session.get_bind().dialect.name == "postgresql":
        # width_bucket over the sorted times: how many are at or before the cutoff, in one C call per row.
        return func.coalesce(func.width_bucket(literal(cutoff, Float), times), 0)
    point = func.json_each(times).table_valued("value").alias("sent_at")
    return select(func.count()).select_from(point).where(point.c.value <= cutoff).scalar_subquery()
