"""Function on the Outcomes page: the Patient-Specific Functional Scale (PSFS) from baseline to the latest rating.

A PSFS **assessment** is the activities a patient rated at one time (up to three, each 0 "unable" to 10 "able
as before"); its score is the mean of those ratings. Per episode in scope, with the windows of pain
(:mod:`engage.outcomes.episodes`): the **baseline** is the newest assessment from 7 days before the first session
to its end, the **latest** the newest one after that and at most 28 days after the last session's start. The
change is latest minus baseline (positive: better function); an episode **improved** when it rose by at least
:data:`MCID` points, the minimal clinically important difference for the mean score (Stratford et al.,
Physiotherapy Canada 1995;47(4):258-63).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from engage.outcomes.episodes import BASELINE_BEFORE, FOLLOW_UP_AFTER_LAST
from engage.outcomes.facts import epoch
from engage.outcomes.figures import _rate, _round
from engage.outcomes.statistics import median
from engage.records.models import Measure, Outcome

MCID = 2.0
SOURCE = "Stratford P et al. Physiotherapy Canada 1995;47(4):258-63 (PSFS; 2 points on the mean score)"


def assessments(session: Session, b: Any) -> list[tuple[int, int, float]]:
    """(enrollment id, 0 baseline / 1 follow-up, mean rating) of the newest baseline and follow-up assessment
    of each enrollment of ``b`` (stored facts with ``patient_id``, ``first_start``, ``first_end``, ``last_start``)."""
    at = epoch(session, Outcome.recorded_at)
    baseline = and_(at >= b.c.first_start - BASELINE_BEFORE.total_seconds(), at <= b.c.first_end)
    later = and_(at > b.c.first_end, at <= b.c.last_start + FOLLOW_UP_AFTER_LAST.total_seconds())
    kind = case((baseline, 0), else_=1)
    means = (
        select(b.c.enrollment_id, kind.label("kind"), at.label("at"), func.avg(Outcome.score).label("mean"))
        .join(Outcome, Outcome.patient_id == b.c.patient_id)
        .where(Outcome.measure == Measure.PSFS.value, or_(baseline, later))
        .group_by(b.c.enrollment_id, kind, at)
        .subquery("means")
    )
    newest = func.row_number().over(partition_by=(means.c.enrollment_id, means.c.kind), order_by=means.c.at.desc())
    ranked = select(means, newest.label("rn")).subquery("ranked")
    query = select(ranked.c.enrollment_id, ranked.c.kind, ranked.c.mean).where(ranked.c.rn == 1)
    return [(int(e), int(k), float(m)) for e, k, m in session.execute(query)]


def summary(rows: list[tuple[int, int, float]]) -> dict[str, Any]:
    """The PSFS figures from :func:`assessments`' rows (pure)."""
    baseline: dict[int, float] = {}
    latest: dict[int, float] = {}
    for enrollment_id, kind, mean in rows:
        (latest if kind else baseline)[enrollment_id] = mean
    followed = [e for e in baseline if e in latest]
    changes = [latest[e] - baseline[e] for e in followed]
    improved = sum(change >= MCID - 1e-9 for change in changes)
    return {
        "with_baseline": len(baseline),
        "with_follow_up": len(followed),
        "median_baseline": _round(median(list(baseline.values()))),
        "median_latest": _round(median([latest[e] for e in followed])),
        "median_change": _round(median(changes)),
        "improved": _rate(improved, len(followed)),
        "mcid": MCID,
        "source": SOURCE,
    }
