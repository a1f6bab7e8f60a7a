"""The Outcomes page's figures from computed episodes (pure): one row of figures for any group of episodes,
the rows by practitioner and by sequence (small cells pooled), patients to act on, and the chart series.

Every row has the same keys as the clinic row, so the API, the CLI and the page read one shape. The counts of
the rows by practitioner (or sequence) add up to the clinic row: a group with fewer than :data:`MIN_CELL`
episodes is not shown under its own name but pooled into one "other" row, whose figures are those of the
pooled episodes (it could be worked out from the clinic row and the others anyway).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable
from typing import Any

from engage.outcomes.episodes import Episode
from engage.outcomes.statistics import kaplan_meier_median, median, quartiles, wilson

MIN_CELL = 5
HIGH_PAIN = 8
OTHER = "Other (fewer than 5 episodes each)"
SOURCES = {
    "two_points": "Childs JD et al. Spine 2005;30(11):1331-4 (2 points on the NPRS, low back pain, physical therapy)",
    "thirty_percent": "Farrar JT et al. Pain 2001;94(2):149-58 (30 % on the 0-10 pain scale)",
}


def _rate(count: int, n: int) -> dict[str, Any]:
    interval = wilson(count, n)
    return {
        "n": n,
        "count": count,
        "rate": round(count / n, 4) if n else None,
        "ci95": [round(interval[0], 4), round(interval[1], 4)] if interval else None,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def row(episodes: list[Episode]) -> dict[str, Any]:
    """The figures of a group of enrollments (those without a baseline count only as enrolled)."""
    with_baseline = [e for e in episodes if e.baseline is not None]
    followed = [e for e in with_baseline if e.follow_ups]
    counts = {
        "two_points": sum(e.two_points for e in followed),
        "thirty_percent": sum(e.thirty_percent for e in followed),
        "both": sum(e.both for e in followed),
    }
    both = _rate(counts["both"], len(followed))
    worsened = sum(e.worsened for e in followed)
    km_days = [e.km_days for e in followed if e.km_days is not None]
    km_sessions = [e.km_sessions for e in followed if e.km_sessions is not None]
    return {
        "enrolled": len(episodes),
        "episodes": len(with_baseline),
        "with_baseline": len(with_baseline),
        "with_follow_up": len(followed),
        "with_final": sum(e.final for e in followed),
        "responders": counts,
        "responder_rate": both["rate"],
        "ci95": both["ci95"],
        "rates": {name: _rate(count, len(followed)) for name, count in counts.items()},
        "median_baseline": _round(median([e.baseline for e in with_baseline if e.baseline is not None])),
        "median_latest": _round(median([e.latest for e in followed if e.latest is not None])),
        "median_change": _round(median([e.change for e in followed if e.change is not None])),
        "worsened": worsened,
        "worsened_rate": _rate(worsened, len(followed))["rate"],
        "time_to_mcid": {
            "median_days": _round(kaplan_meier_median(km_days)),
            "median_sessions": _round(kaplan_meier_median(km_sessions)),
            "events": sum(event for _, event in km_days),
            "censored": sum(not event for _, event in km_days),
        },
    }


def grouped(
    episodes: list[Episode], key: Callable[[Episode], Hashable], names: dict[Any, str], nobody: str
) -> list[dict[str, Any]]:
    """One row per group with at least :data:`MIN_CELL` episodes (``id``, ``name``, ``hidden`` False, the
    figures), largest first; the smaller groups pooled into one last row (``id`` None, ``hidden`` True,
    ``groups``: how many). ``names``: group id -> name; ``nobody``: the name of the group whose id is None."""
    groups: dict[Any, list[Episode]] = defaultdict(list)
    for episode in episodes:
        groups[key(episode)].append(episode)
    shown: list[dict[str, Any]] = []
    pooled: list[Episode] = []
    pooled_groups = 0
    for group_id, members in groups.items():
        figures = row(members)
        if figures["episodes"] >= MIN_CELL:
            name = nobody if group_id is None else names.get(group_id, str(group_id))
            shown.append({"id": group_id, "name": name, "hidden": False, **figures})
        else:
            pooled.extend(members)
            pooled_groups += 1
    shown.sort(key=lambda r: (-r["episodes"], str(r["name"])))
    if pooled:
        shown.append({"id": None, "name": OTHER, "hidden": True, "groups": pooled_groups, **row(pooled)})
    return shown


def act_on(episodes: list[Episode]) -> list[dict[str, Any]]:
    """Patients of live enrollments to act on: worsened by 2 or more, latest score 8 or more, or two prompts in a
    row unanswered; each with its reasons, most reasons first."""
    found: list[dict[str, Any]] = []
    for episode in episodes:
        if not episode.active:
            continue
        reasons: list[str] = []
        if episode.worsened:
            reasons.append("worsened")
        if episode.latest is not None and episode.latest >= HIGH_PAIN:
            reasons.append("high_pain")
        if episode.unanswered_in_a_row >= 2:
            reasons.append("unanswered")
        if reasons:
            found.append(
                {
                    "patient_id": episode.patient_id,
                    "enrollment_id": episode.enrollment_id,
                    "baseline": episode.baseline,
                    "latest": episode.latest,
                    "unanswered_in_a_row": episode.unanswered_in_a_row,
                    "reasons": reasons,
                }
            )
    found.sort(key=lambda r: (-len(r["reasons"]), -(r["latest"] or 0), r["patient_id"]))
    return found


def response_rates(rows: list[Any]) -> dict[str, dict[str, Any]]:
    """Per channel, from (channel, prompts sent, answered within 72 hours): the rate with its Wilson interval."""
    found = {
        str(getattr(channel, "value", channel)): (int(sent), int(answered or 0)) for channel, sent, answered in rows
    }
    return {channel: _rate(answered, sent) for channel, (sent, answered) in sorted(found.items())}


def pain_by_session(counts: list[Any]) -> list[dict[str, Any]]:
    """Median pain and its interquartile range by sessions begun before the score (0: before treatment), from
    (sessions begun, score, how many) counts; each point with its n."""
    scores: dict[int, list[int]] = defaultdict(list)
    for number, score, count in sorted(counts, key=lambda r: (int(r[0] or 0), r[1])):
        scores[int(number or 0)].extend([int(score)] * int(count))
    points = []
    for number in sorted(scores):
        q = quartiles(scores[number])
        assert q is not None
        points.append({"session": number, "n": len(scores[number]), "q1": q[0], "median": q[1], "q3": q[2]})
    return points


def responders_by_month(episodes: list[Episode], month_of: Callable[[Episode], str]) -> list[dict[str, Any]]:
    """The responder rate (both criteria) of episodes with a follow-up, by the month of their first session."""
    months: dict[str, list[Episode]] = defaultdict(list)
    for episode in episodes:
        if episode.baseline is not None and episode.follow_ups:
            months[month_of(episode)].append(episode)
    return [{"month": month, **_rate(sum(e.both for e in eps), len(eps))} for month, eps in sorted(months.items())]
