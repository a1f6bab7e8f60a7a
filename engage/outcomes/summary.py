"""The clinic-wide outcome summary: load a clinic's enrollments, sessions, pain scores and prompts in a few
statements, compute each episode (:mod:`engage.outcomes.episodes`) and the figures (:mod:`engage.outcomes.figures`).

The CLI (``engage outcomes summary``), the API (``GET /api/v1/outcomes/summary``) and the Outcomes page all call
:func:`outcome_summary`, so they answer the same figures under the same keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.conversation import start_back
from engage.errors import InvalidInput
from engage.outcomes import facts, figures, function, stored_facts, tally
from engage.outcomes.episodes import WORSE_POINTS, Episode, meets_mcid
from engage.records.lookup import get
from engage.records.models import (
    Channel,
    Clinic,
    Enrollment,
    EnrollmentStatus,
    MessageStatus,
    Patient,
    Practitioner,
    TreatmentPlan,
)

REASSESSMENT = "reassessment"
PROMPT_CHANNELS = [channel.value for channel in Channel]
_SENT = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNKNOWN)
RISK_NAMES = {start_back.LOW: "Low risk", start_back.MEDIUM: "Medium risk", start_back.HIGH: "High risk"}
#: How many patients to act on the summary lists, the most urgent first (``act_on_total`` counts them all; the CSV
#: has every episode): a clinic with 13,000 of them got a 1.5 MB answer from the API, most of its time spent there.
ACT_ON_NAMED = 100


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


def _where(filters: Filters) -> list[Any]:
    where: list[Any] = []
    if filters.sequence:
        where.append(Enrollment.sequence_key == filters.sequence)
    if filters.condition:
        where.append(func.lower(TreatmentPlan.condition) == filters.condition.lower())
    if filters.modality:
        where.append(func.lower(TreatmentPlan.modality) == filters.modality.lower())
    return where


def _scope(filters: Filters, tz: ZoneInfo) -> stored_facts.Scope:
    """The filters as the database applies them: the period's local dates as instants in the clinic's zone."""
    after = datetime.combine(filters.start, time(0), tz).timestamp() if filters.start else None
    before = datetime.combine(filters.end + timedelta(days=1), time(0), tz).timestamp() if filters.end else None
    return stored_facts.Scope(tuple(_where(filters)), filters.practitioner_id, after, before)


def _episode(row: Any, streaks: dict[int, int]) -> Episode:
    """An :class:`Episode` from the database's facts (the same definitions as :func:`episodes.compute`)."""
    episode = Episode(
        row.enrollment_id,
        row.patient_id,
        row.practitioner_id,
        row.sequence_key,
        datetime.fromtimestamp(row.first_start, timezone.utc),
        active=row.status in (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED),
        unanswered_in_a_row=streaks.get(row.enrollment_id, 0),
    )
    if row.baseline is None:
        return episode
    episode.baseline = row.baseline
    if not row.follow_ups:
        return episode
    first = row.first_start
    episode.follow_ups = row.follow_ups
    episode.latest = row.latest
    episode.latest_at = datetime.fromtimestamp(row.latest_at, timezone.utc)
    episode.final = row.latest_at >= row.last_start
    episode.two_points, episode.thirty_percent = meets_mcid(row.baseline, row.latest)
    episode.both = episode.two_points and episode.thirty_percent
    episode.worsened = row.latest - row.baseline >= WORSE_POINTS
    if row.mcid_at is not None:
        episode.days_to_mcid = (row.mcid_at - first) / 86400
        episode.sessions_to_mcid = row.mcid_sessions
        episode.km_days = (episode.days_to_mcid, True)
        episode.km_sessions = (float(row.mcid_sessions), True)
    else:
        episode.km_days = ((row.latest_at - first) / 86400, False)
        episode.km_sessions = (float(row.latest_sessions), False)
    return episode


@dataclass
class Loaded:
    """What :func:`load_episodes` found: the episodes, practitioner names, prompt rates and chart counts."""

    episodes: list[Episode]
    names: dict[int, str]
    rates: list[Any]
    histogram: list[Any]


def _prepare(session: Session, clinic_id: int, filters: Filters) -> tuple[ZoneInfo, dict[int, str], Any]:
    """The clinic's zone, its practitioners' names, and its enrollments in scope as a selectable of stored facts
    (stale ones computed first). ``InvalidInput`` (field ``practitioner``) for a practitioner of another clinic."""
    clinic: Clinic = get(session, Clinic, clinic_id)
    tz = ZoneInfo(clinic.timezone)
    names: dict[int, str] = {
        row.id: row.name
        for row in session.execute(
            select(Practitioner.id, Practitioner.name).where(Practitioner.clinic_id == clinic_id)
        )
    }
    if filters.practitioner_id is not None and filters.practitioner_id not in names:
        raise InvalidInput(f"no practitioner with id {filters.practitioner_id} in this clinic", field="practitioner")
    if session.get_bind().dialect.name == "postgresql":
        # Computing stale facts trips PostgreSQL's JIT on large batches (its compilation costs more than the
        # queries), and sorts their scores in memory rather than on disk; for this transaction only.
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL work_mem = '64MB'"))
    stored_facts.refresh(session, clinic_id)
    return tz, names, stored_facts.scoped(session, clinic_id, _scope(filters, tz))


def load_episodes(session: Session, clinic_id: int, filters: Filters, now: datetime | None = None) -> Loaded:
    """The clinic's enrollments matching ``filters`` as :class:`Episode` objects, from their stored facts (for
    the CSV export; the page's figures come from :func:`outcome_summary`, in one pass without them).

    Raises ``InvalidInput`` (field ``practitioner``) for a practitioner of another clinic."""
    now = now or utcnow()
    _, names, scoped = _prepare(session, clinic_id, filters)
    rows = stored_facts.episode_facts(session, scoped)
    rates, streaks = facts.prompt_facts(session, scoped, now.timestamp())
    histogram = stored_facts.pain_histogram(session, scoped)
    return Loaded([_episode(r, streaks) for r in rows], names, rates, histogram)


def outcome_summary(
    session: Session,
    clinic_id: int,
    filters: Filters | None = None,
    now: datetime | None = None,
    *,
    with_names: bool = False,
) -> dict[str, Any]:
    """The clinic's figures (the clinic row's keys at the top level), ``by_practitioner``, ``by_sequence`` and
    ``by_start_back_risk`` rows (small cells pooled), ``function`` (the PSFS figures), ``response_rate`` per
    channel, ``act_on``, the chart series and the sources.

    ``act_on`` lists the first :data:`ACT_ON_NAMED` (``act_on_total``: how many in all); ``with_names``: they
    also carry the patient's name (the staff page; the API and the CLI answer ids). Raises ``InvalidInput`` for
    a practitioner of another clinic, ``NotFound`` for an unknown clinic.
    """
    filters = filters or Filters()
    now = now or utcnow()
    tz, names, b = _prepare(session, clinic_id, filters)
    live = b.c.status.in_([EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED])
    # The clinic's patients, not b's: a second reference to b made PostgreSQL materialize it (20,000 rows with
    # their chart points) instead of joining it in place; the join below keeps the same patients' risks.
    risk = start_back.newest_risks(select(Patient.id).where(Patient.clinic_id == clinic_id))
    computed = {"active": live.label("active"), "risk": risk.c.risk}
    columns = [computed[name] if name in computed else b.c[name] for name in tally.COLUMNS]
    # Each enrollment's stored prompts: the rates per channel add them up, the patients to act on read the runs.
    channels = [c for name in PROMPT_CHANNELS for c in (b.c[f"prompts_{name}"], b.c[f"in_time_{name}"])]
    unanswered = facts.unanswered_run(session, b.c.unanswered_sent, now.timestamp())
    query = select(*columns, *channels, b.c.pain_points, unanswered).outerjoin(
        risk, risk.c.patient_id == b.c.patient_id
    )
    rows = facts.tuples(session, query)
    width = len(tally.COLUMNS)
    # Runs of 2 or more only, as prompt_facts counts them (an entry's unanswered_in_a_row is 0 below that).
    streaks = {row[0]: int(row[-1]) for row in rows if row[-1] >= 2}
    # C-level passes (map, filter, sum): 20,000 rows each, without a Python step per row.
    totals = [int(sum(filter(None, map(itemgetter(width + i), rows)))) for i in range(len(channels))]
    rates = [(name, totals[2 * i], totals[2 * i + 1]) for i, name in enumerate(PROMPT_CHANNELS) if totals[2 * i]]
    found = tally.summarize(list(map(itemgetter(slice(0, width)), rows)), streaks, tz, limit=ACT_ON_NAMED)
    act_on = found.act_on
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
        **tally.row(tally.merged(found.cells.values())),
        "by_practitioner": tally.grouped(found.cells, lambda cell: cell[0], names, "No practitioner named"),
        "by_sequence": tally.grouped(found.cells, lambda cell: cell[1], {}, "No sequence"),
        "by_start_back_risk": tally.grouped(found.cells, lambda cell: cell[2], RISK_NAMES, "Not screened"),
        "function": function.summary(function.assessments(session, b)),
        "response_rate": figures.response_rates(rates),
        "act_on": act_on,
        "act_on_total": found.act_on_total,
        "pain_by_session": figures.pain_by_session(stored_facts.pain_counts(map(itemgetter(-2), rows))),
        "responders_by_month": tally.responders_by_month(found.months),
        "sources": figures.SOURCES,
    }
