"""The few statistics the Outcomes page needs, pure and small enough to check by hand.

- :func:`wilson`: the Wilson score interval for a proportion (Wilson 1927; Newcombe 1998 recommends it over
  the Wald interval for small n and rates near 0 or 1);
- :func:`kaplan_meier_median`: the product-limit estimate of the time to an event with right-censoring
  (Kaplan & Meier 1958), and the first time at which the survival falls to 0.5 or below;
- :func:`median` and :func:`quartiles`: the ordinary median and the quartiles with linear interpolation
  between order statistics (the "inclusive" method, Hyndman & Fan type 7, as spreadsheets compute them).

Each is a few lines, so engage carries them instead of scipy or statsmodels (tens of megabytes for the
same arithmetic); tests pin every figure to values worked by hand.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Iterator, Sequence

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal distribution


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval ``(low, high)`` for ``successes`` out of ``n``; None when ``n`` is 0.

    Raises ``ValueError`` for counts that are negative or more successes than trials.
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"{successes} successes out of {n} is not a proportion")
    if n == 0:
        return None
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def kaplan_meier(times: Iterable[tuple[float, bool]]) -> list[tuple[float, float]]:
    """The Kaplan-Meier survival curve: ``(time, S(time))`` at each time an event happened, in time order.

    ``times``: one ``(time, event)`` per subject; ``event`` False means censored at that time (lost to
    follow-up, or still without the event). At a time with both, events count before censorings, as usual.
    """
    return list(_curve(times))


def _curve(times: Iterable[tuple[float, bool]]) -> Iterator[tuple[float, float]]:
    ordered = sorted(times)  # by time; one pass over each time's subjects, so their order there does not matter
    total = len(ordered)
    at_risk, survival, i = total, 1.0, 0
    while i < total:
        time, events, j = ordered[i][0], 0, i
        while j < total and ordered[j][0] == time:
            events += ordered[j][1]
            j += 1
        if events:
            survival *= 1 - events / at_risk
            yield time, survival
        at_risk -= j - i
        i = j


def kaplan_meier_median(times: Iterable[tuple[float, bool]]) -> float | None:
    """The first event time at which the Kaplan-Meier survival is 0.5 or less; None when it never falls that
    far (fewer than half reached the event, counting the censored fairly)."""
    for time, survival in _curve(times):
        if survival <= 0.5 + 1e-12:
            return time
    return None


def median(values: Sequence[float]) -> float | None:
    """The median; None for no values."""
    return float(statistics.median(values)) if values else None


def quartiles(values: Sequence[float]) -> tuple[float, float, float] | None:
    """``(Q1, median, Q3)`` by linear interpolation (type 7); None for no values, the value thrice for one."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0]), float(values[0]), float(values[0])
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return float(q1), float(q2), float(q3)
