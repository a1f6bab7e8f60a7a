"""The one-pass figures (:mod:`engage.outcomes.tally`) equal the figures over episode objects
(:mod:`engage.outcomes.figures`), the definitions' reference, on many random sets of episodes."""

from __future__ import annotations

import random
import statistics
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engage.outcomes import figures, tally
from engage.outcomes.statistics import kaplan_meier_median as statistics_km
from engage.outcomes.stored_facts import EpisodeFacts
from engage.outcomes.summary import _episode
from engage.records.models import EnrollmentStatus

TZ = ZoneInfo("America/New_York")
DAY = 86400.0
START = 1_760_000_000.0  # October 2025: the months cross a daylight-saving change


def _facts(rng: random.Random, number: int) -> EpisodeFacts:
    first = START + rng.uniform(0, 150) * DAY
    last = first + rng.choice([0, 7, 21, 35]) * DAY
    baseline = rng.choice([None, None, 0, *range(11)])
    follow_ups = 0 if baseline is None else rng.choice([0, 1, 2, 3])
    latest = rng.randint(0, 10) if follow_ups else None
    latest_at = last + rng.choice([-3, 0, 2]) * DAY if follow_ups else None
    fall = (baseline or 0) - (latest or 0)
    meets = follow_ups and baseline and fall >= 2 and fall >= 0.3 * baseline - 1e-9
    mcid_at = first + rng.uniform(1, 20) * DAY if meets and rng.random() < 0.8 else None
    return EpisodeFacts(
        number,
        1000 + number,
        number,
        rng.choice(["a", "b", "c"]),
        rng.choice(list(EnrollmentStatus)),
        rng.choice([None, 1, 2, 3, 4]),
        first,
        first + 2700,
        last,
        baseline,
        follow_ups,
        latest_at,
        latest,
        rng.randint(1, 6) if follow_ups else None,
        mcid_at,
        rng.randint(1, 6) if mcid_at is not None else None,
    )


def _projected(row: EpisodeFacts) -> tuple[Any, ...]:
    active = row.status in (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED)
    extra = {"active": active, "risk": None}
    return tuple(extra[name] if name in extra else getattr(row, name) for name in tally.COLUMNS)


@pytest.mark.parametrize("seed", range(40))
def test_one_pass_figures_equal_the_figures_over_episodes(seed: int) -> None:
    rng = random.Random(seed)
    rows = [_facts(rng, n) for n in range(rng.choice([0, 3, 12, 60, 250]))]
    streaks = {row.enrollment_id: rng.choice([0, 1, 2, 3]) for row in rows if rng.random() < 0.3}
    names = {1: "Dr. One", 2: "Dr. Two"}
    episodes = [_episode(row, streaks) for row in rows]
    found = tally.summarize([_projected(row) for row in rows], streaks, TZ)

    assert tally.row(tally.merged(found.cells.values())) == figures.row(episodes)
    assert tally.grouped(found.cells, lambda c: c[0], names, "nobody") == figures.grouped(
        episodes, lambda e: e.practitioner_id, names, "nobody"
    )
    assert tally.grouped(found.cells, lambda c: c[1], {}, "none") == figures.grouped(
        episodes, lambda e: e.sequence_key, {}, "none"
    )
    assert found.act_on == figures.act_on(episodes)
    assert found.act_on_total == len(found.act_on)
    assert tally.summarize([_projected(row) for row in rows], streaks, TZ, limit=3).act_on == found.act_on[:3]
    assert tally.responders_by_month(found.months) == figures.responders_by_month(
        episodes, lambda e: e.first_session.astimezone(TZ).strftime("%Y-%m")
    )


@pytest.mark.parametrize("seed", range(30))
def test_medians_over_counts_equal_the_medians_over_every_value(seed: int) -> None:
    # Many ties (scores, sessions, whole days) and a few values, where the middle and the 0.5 survival fall on
    # the edge between two values.
    rng = random.Random(seed)
    values = [rng.randint(-10, 10) for _ in range(rng.choice([1, 2, 3, 4, 9, 10, 101]))]
    counts: dict[Any, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    assert tally.median_of_counts(counts) == statistics.median(values)
    times = [(float(rng.choice([1, 2, 3, 5, 8, rng.uniform(0, 9)])), rng.random() < 0.6) for _ in values]
    pairs: dict[tuple[float, bool], int] = {}
    for pair in times:
        pairs[pair] = pairs.get(pair, 0) + 1
    assert tally.kaplan_meier_median_of_counts(pairs) == statistics_km(times)


def test_medians_over_no_counts_are_none() -> None:
    assert tally.median_of_counts({}) is None
    assert tally.kaplan_meier_median_of_counts({}) is None
    assert tally.median_of_counts({4: 1, 6: 1}) == 5.0
    assert tally.kaplan_meier_median_of_counts({(1.0, False): 2, (10.0, True): 1, (20.0, True): 1}) == 10.0
