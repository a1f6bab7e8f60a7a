"""The Outcomes page's figures in one pass over the stored facts (pure), without an object per episode.

:mod:`engage.outcomes.figures` states the figures over :class:`~engage.outcomes.episodes.Episode` objects; at
20,000 episodes building those objects and walking them once per row (clinic, each practitioner, each sequence,
each month) costs most of a second. Here each fact row is read once into a :class:`Tally` per (practitioner,
sequence) cell: counts, the values the medians need and the Kaplan-Meier times. Every figure is a sum, a median
or a Kaplan-Meier estimate over a set of episodes, so merging cells gives any row exactly; :func:`summarize`
answers the same dict :mod:`figures` does (the tests hold the two equal), from the same definitions
(:mod:`engage.outcomes.episodes`).
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from engage.outcomes.episodes import MCID_POINTS, MCID_SHARE, WORSE_POINTS
from engage.outcomes.figures import HIGH_PAIN, MIN_CELL, OTHER, _rate, _round

#: The columns :func:`summarize` reads from each fact row, in this order.
COLUMNS = (
    "enrollment_id",
    "patient_id",
    "practitioner_id",
    "sequence_key",
    "active",
    "first_start",
    "last_start",
    "baseline",
    "follow_ups",
    "latest",
    "latest_at",
    "latest_sessions",
    "mcid_at",
    "mcid_sessions",
    "risk",  # the patient's newest STarT Back risk group (None: not screened)
)


def _add_counts(into: dict[Any, int], other: dict[Any, int]) -> None:
    for value, count in other.items():
        into[value] = into.get(value, 0) + count


def median_of_counts(counts: dict[Any, int]) -> float | None:
    """The median of the values ``counts`` holds (value -> how many times): :func:`statistics.median` of them
    all, without listing them (scores and changes are 21 values at most, whatever the number of episodes)."""
    n = sum(counts.values())
    if not n:
        return None
    low_at, high_at = (n - 1) // 2, n // 2  # the middle positions (one for an odd n)
    low = high = None
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if low is None and seen > low_at:
            low = value
        if seen > high_at:
            high = value
            break
    assert low is not None and high is not None
    return float(low) if n % 2 else float((low + high) / 2)


def kaplan_meier_median_of_counts(counts: dict[tuple[float, bool], int]) -> float | None:
    """:func:`engage.outcomes.statistics.kaplan_meier_median` of the (time, event) pairs ``counts`` holds (pair
    -> how many times): the same products in the same order, once per distinct time."""
    at_risk = sum(counts.values())
    survival = 1.0
    time: float | None = None
    events = removed = 0
    for (at, event), count in sorted(counts.items()):
        if at != time:
            if events:
                survival *= 1 - events / at_risk
                if survival <= 0.5 + 1e-12:
                    return time
            at_risk -= removed
            time, events, removed = at, 0, 0
        removed += count
        if event:
            events += count
    if events:
        survival *= 1 - events / at_risk
        if survival <= 0.5 + 1e-12:
            return time
    return None


@dataclass(slots=True)
class Tally:
    """What the figures of a set of enrollments need (see :func:`figures.row` for each figure): counts, and the
    values the medians and Kaplan-Meier estimates need as value -> how many (merging cells adds them)."""

    enrolled: int = 0
    final: int = 0
    two_points: int = 0
    thirty_percent: int = 0
    both: int = 0
    worsened: int = 0
    with_baseline: int = 0
    with_follow_up: int = 0
    baselines: dict[int, int] = field(default_factory=dict)  # of every episode
    latests: dict[int, int] = field(default_factory=dict)  # of the episodes with a follow-up
    changes: dict[int, int] = field(default_factory=dict)
    km_days: dict[tuple[float, bool], int] = field(default_factory=dict)
    km_sessions: dict[tuple[float, bool], int] = field(default_factory=dict)

    def add(self, other: Tally) -> None:
        self.enrolled += other.enrolled
        self.final += other.final
        self.two_points += other.two_points
        self.thirty_percent += other.thirty_percent
        self.both += other.both
        self.worsened += other.worsened
        self.with_baseline += other.with_baseline
        self.with_follow_up += other.with_follow_up
        _add_counts(self.baselines, other.baselines)
        _add_counts(self.latests, other.latests)
        _add_counts(self.changes, other.changes)
        _add_counts(self.km_days, other.km_days)
        _add_counts(self.km_sessions, other.km_sessions)


def merged(tallies: Iterable[Tally]) -> Tally:
    total = Tally()
    for tally in tallies:
        total.add(tally)
    return total


def row(t: Tally) -> dict[str, Any]:
    """The figures of a tally: the keys and values :func:`engage.outcomes.figures.row` gives its episodes."""
    followed = t.with_follow_up
    counts = {"two_points": t.two_points, "thirty_percent": t.thirty_percent, "both": t.both}
    both = _rate(t.both, followed)
    events = sum(count for (_, event), count in t.km_days.items() if event)
    return {
        "enrolled": t.enrolled,
        "episodes": t.with_baseline,
        "with_baseline": t.with_baseline,
        "with_follow_up": followed,
        "with_final": t.final,
        "responders": counts,
        "responder_rate": both["rate"],
        "ci95": both["ci95"],
        "rates": {name: _rate(count, followed) for name, count in counts.items()},
        "median_baseline": _round(median_of_counts(t.baselines)),
        "median_latest": _round(median_of_counts(t.latests)),
        "median_change": _round(median_of_counts(t.changes)),
        "worsened": t.worsened,
        "worsened_rate": _rate(t.worsened, followed)["rate"],
        "time_to_mcid": {
            "median_days": _round(kaplan_meier_median_of_counts(t.km_days)),
            "median_sessions": _round(kaplan_meier_median_of_counts(t.km_sessions)),
            "events": events,
            "censored": followed - events,
        },
    }


def grouped(
    cells: dict[tuple[Any, Any, Any], Tally],
    key: Callable[[tuple[Any, Any, Any]], Hashable],
    names: dict[Any, str],
    nobody: str,
) -> list[dict[str, Any]]:
    """The rows of :func:`engage.outcomes.figures.grouped`: one per group of at least :data:`MIN_CELL` episodes,
    largest first, the smaller ones pooled into one last row."""
    groups: dict[Any, Tally] = {}
    for cell, tally in cells.items():
        groups.setdefault(key(cell), Tally()).add(tally)
    shown: list[dict[str, Any]] = []
    pooled, pooled_groups = Tally(), 0
    for group_id, tally in groups.items():
        if tally.with_baseline >= MIN_CELL:
            name = nobody if group_id is None else names.get(group_id, str(group_id))
            shown.append({"id": group_id, "name": name, "hidden": False, **row(tally)})
        else:
            pooled.add(tally)
            pooled_groups += 1
    shown.sort(key=lambda r: (-r["episodes"], str(r["name"])))
    if pooled_groups:
        shown.append({"id": None, "name": OTHER, "hidden": True, "groups": pooled_groups, **row(pooled)})
    return shown


class _Months:
    """The local month (``YYYY-MM`` in the clinic's zone) of an instant in epoch seconds, by bisecting the
    months' first instants instead of converting each of 20,000 instants."""

    def __init__(self, tz: ZoneInfo, instants: list[float]) -> None:
        self.starts: list[float] = []
        self.names: list[str] = []
        if not instants:
            return
        first = datetime.fromtimestamp(min(instants), timezone.utc).astimezone(tz)
        last = datetime.fromtimestamp(max(instants), timezone.utc).astimezone(tz)
        year, month = first.year, first.month
        while (year, month) <= (last.year, last.month):
            self.starts.append(datetime(year, month, 1, tzinfo=tz).timestamp())
            self.names.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    def of(self, instant: float) -> str:
        return self.names[max(0, bisect_right(self.starts, instant) - 1)]


@dataclass
class Summary:
    """The clinic's figures by cell, the months' responder counts, and the patients to act on."""

    cells: dict[tuple[Any, Any, Any], Tally]
    months: dict[str, list[int]]  # month -> [episodes with a follow-up, responders on both criteria]
    act_on: list[dict[str, Any]]
    act_on_total: int


def summarize(
    rows: Iterable[tuple[Any, ...]], streaks: dict[int, int], tz: ZoneInfo, limit: int | None = None
) -> Summary:
    """One pass over fact rows (:data:`COLUMNS`; times in epoch seconds): the tallies per (practitioner,
    sequence, risk), the responders per month of the first session, and :func:`engage.outcomes.figures.act_on`'s list
    (its first ``limit``; None: all) with how many it has. ``streaks``: enrollment id -> prompts unanswered in a
    row."""
    rows = list(rows)
    months = _Months(tz, [r[5] for r in rows if r[7] is not None and r[8]])
    cells: dict[tuple[Any, Any, Any], Tally] = {}
    by_month: dict[str, list[int]] = {}
    candidates: list[tuple[Any, ...]] = []
    month_starts, month_names = months.starts, months.names  # months.of, written out below
    for (
        enrollment_id,
        patient_id,
        practitioner_id,
        sequence_key,
        active,
        first_start,
        last_start,
        baseline,
        follow_ups,
        latest,
        latest_at,
        latest_sessions,
        mcid_at,
        mcid_sessions,
        risk,
    ) in rows:
        # The dict updates are written out (not helpers): this loop runs once per enrollment, 20,000 times.
        tally = cells.get((practitioner_id, sequence_key, risk))
        if tally is None:
            tally = cells[practitioner_id, sequence_key, risk] = Tally()
        tally.enrolled += 1
        worsened = False
        if baseline is not None:
            tally.with_baseline += 1
            counts = tally.baselines
            counts[baseline] = counts.get(baseline, 0) + 1
            if follow_ups:
                fall = baseline - latest
                two = fall >= MCID_POINTS
                thirty = baseline > 0 and fall >= MCID_SHARE * baseline - 1e-9
                worsened = -fall >= WORSE_POINTS
                tally.with_follow_up += 1
                counts = tally.latests
                counts[latest] = counts.get(latest, 0) + 1
                counts = tally.changes
                counts[-fall] = counts.get(-fall, 0) + 1
                if latest_at >= last_start:
                    tally.final += 1
                if two:
                    tally.two_points += 1
                if thirty:
                    tally.thirty_percent += 1
                    if two:
                        tally.both += 1
                if worsened:
                    tally.worsened += 1
                if mcid_at is not None:
                    days, sessions = ((mcid_at - first_start) / 86400, True), (float(mcid_sessions), True)
                else:
                    days, sessions = ((latest_at - first_start) / 86400, False), (float(latest_sessions), False)
                km = tally.km_days
                km[days] = km.get(days, 0) + 1
                km = tally.km_sessions
                km[sessions] = km.get(sessions, 0) + 1
                name = month_names[max(0, bisect_right(month_starts, first_start) - 1)]
                month = by_month.get(name)
                if month is None:
                    month = by_month[name] = [0, 0]
                month[0] += 1
                if two and thirty:
                    month[1] += 1
            else:
                latest = None
        else:
            latest = None
        if not active:
            continue
        unanswered = streaks.get(enrollment_id, 0)
        high = latest is not None and latest >= HIGH_PAIN
        if worsened or high or unanswered >= 2:
            reasons = worsened + high + (unanswered >= 2)
            candidates.append(
                (-reasons, -(latest or 0), patient_id, enrollment_id, baseline, latest, unanswered, worsened, high)
            )
    chosen = sorted(candidates) if limit is None else heapq.nsmallest(limit, candidates)
    act_on = [
        {
            "patient_id": patient_id,
            "enrollment_id": enrollment_id,
            "baseline": baseline,
            "latest": latest,
            "unanswered_in_a_row": unanswered,
            "reasons": [
                reason
                for reason, applies in (("worsened", worsened), ("high_pain", high), ("unanswered", unanswered >= 2))
                if applies
            ],
        }
        for _, _, patient_id, enrollment_id, baseline, latest, unanswered, worsened, high in chosen
    ]
    return Summary(cells, by_month, act_on, len(candidates))


def responders_by_month(months: dict[str, list[int]]) -> list[dict[str, Any]]:
    """The responder rate (both criteria) by month, as :func:`engage.outcomes.figures.responders_by_month`."""
    return [{"month": month, **_rate(both, n)} for month, (n, both) in sorted(months.items())]
