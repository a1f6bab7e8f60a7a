"""One episode of care, computed from its sessions and pain scores (pure: no database, no clock).

An **episode** is an enrollment with a baseline. The definitions, as the Outcomes page states them:

- the **first session** is the plan's earliest appointment that was not cancelled;
- the **baseline** is the NPRS pain score (0-10) recorded from 7 days before the first session's start to
  that session's end; with several, the latest (the one nearest treatment);
- a **follow-up** is a score recorded after the first session ended and at most :data:`FOLLOW_UP_AFTER_LAST`
  after the last session's start; the **latest** is the newest follow-up, and a **final** score is a follow-up
  at or after the last session's start;
- **change** is latest minus baseline (negative: less pain); **percent change** is that over the baseline;
- a **responder** on 2 points improved by at least 2 (Childs 2005 for low back pain in physical therapy), on
  30 % by at least 30 % of the baseline (Farrar 2001), and **both** on both: the minimal clinically important
  difference (MCID) this page counts; a baseline of 0 cannot improve, so it is no responder;
- **worsened**: the latest is at least 2 points above the baseline;
- **days and sessions to the MCID**: from the first session's start to the first follow-up meeting both
  criteria, in days, and in the sessions begun by then; an episode with follow-ups that never met it is
  censored at its latest follow-up (lost to follow-up or still in care).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timedelta

BASELINE_BEFORE = timedelta(days=7)
FOLLOW_UP_AFTER_LAST = timedelta(days=28)
MCID_POINTS = 2
MCID_SHARE = 0.30
WORSE_POINTS = 2
#: A prompt counts as unanswered once this long passed after it went out without an answer.
ANSWER_WITHIN = timedelta(hours=72)


@dataclass(frozen=True)
class Score:
    at: datetime
    score: int


@dataclass(frozen=True)
class Prompt:
    """A reassessment prompt that went out: when, by which channel, and its first answer's time (or None)."""

    sent_at: datetime
    channel: str
    answered_at: datetime | None = None

    def answered_in_time(self) -> bool:
        return self.answered_at is not None and self.answered_at - self.sent_at <= ANSWER_WITHIN


@dataclass(frozen=True)
class EpisodeInput:
    """What one enrollment brings: its sessions (starts of the visits not cancelled, in order, and the first's
    end), the patient's NPRS scores and the enrollment's prompts, and what the page filters and groups by."""

    enrollment_id: int
    patient_id: int
    sessions: tuple[datetime, ...]
    first_end: datetime
    scores: tuple[Score, ...]
    prompts: tuple[Prompt, ...] = ()
    practitioner_id: int | None = None
    sequence_key: str = ""
    condition: str = ""
    modality: str = ""
    active: bool = True  # the enrollment is active or paused: its patient may still need a person


@dataclass
class Episode:
    """The figures of one enrollment (``baseline`` None: no episode, it only counts as enrolled)."""

    enrollment_id: int
    patient_id: int
    practitioner_id: int | None
    sequence_key: str
    first_session: datetime
    baseline: int | None = None
    latest: int | None = None
    latest_at: datetime | None = None
    follow_ups: int = 0
    final: bool = False
    two_points: bool = False
    thirty_percent: bool = False
    both: bool = False
    worsened: bool = False
    days_to_mcid: float | None = None
    sessions_to_mcid: int | None = None
    #: (time, event) for Kaplan-Meier, in days and in sessions; None without follow-ups.
    km_days: tuple[float, bool] | None = None
    km_sessions: tuple[float, bool] | None = None
    #: (sessions begun before the score, score) for the baseline and each follow-up.
    by_session: list[tuple[int, int]] = field(default_factory=list)
    unanswered_in_a_row: int = 0
    prompts: tuple[Prompt, ...] = ()
    active: bool = True

    @property
    def change(self) -> int | None:
        return None if self.baseline is None or self.latest is None else self.latest - self.baseline

    @property
    def percent_change(self) -> float | None:
        change = self.change
        if change is None or not self.baseline:
            return None
        return round(100 * change / self.baseline, 1)


def meets_mcid(baseline: int, score: int) -> tuple[bool, bool]:
    """(improved by at least 2 points, improved by at least 30 %) from ``baseline`` to ``score``."""
    fall = baseline - score
    return fall >= MCID_POINTS, baseline > 0 and fall >= MCID_SHARE * baseline - 1e-9


def compute(data: EpisodeInput, now: datetime) -> Episode:
    """The episode's figures from ``data`` as of ``now`` (see the module docstring for each definition)."""
    first = data.sessions[0]
    episode = Episode(
        data.enrollment_id,
        data.patient_id,
        data.practitioner_id,
        data.sequence_key,
        first,
        prompts=data.prompts,
        active=data.active,
    )
    episode.unanswered_in_a_row = _unanswered_in_a_row(data.prompts, now)
    scores = sorted(data.scores, key=lambda s: s.at)
    window = [s for s in scores if first - BASELINE_BEFORE <= s.at <= data.first_end]
    if not window:
        return episode
    baseline = window[-1]
    episode.baseline = baseline.score
    episode.by_session.append((bisect_right(data.sessions, baseline.at), baseline.score))
    last = data.sessions[-1]
    follow_ups = [s for s in scores if data.first_end < s.at <= last + FOLLOW_UP_AFTER_LAST]
    if not follow_ups:
        return episode
    for score in follow_ups:
        episode.by_session.append((bisect_right(data.sessions, score.at), score.score))
        if episode.days_to_mcid is None and all(meets_mcid(baseline.score, score.score)):
            episode.days_to_mcid = (score.at - first).total_seconds() / 86400
            episode.sessions_to_mcid = bisect_right(data.sessions, score.at)
    latest = follow_ups[-1]
    episode.follow_ups = len(follow_ups)
    episode.latest, episode.latest_at = latest.score, latest.at
    episode.final = latest.at >= last
    episode.two_points, episode.thirty_percent = meets_mcid(baseline.score, latest.score)
    episode.both = episode.two_points and episode.thirty_percent
    episode.worsened = latest.score - baseline.score >= WORSE_POINTS
    if episode.days_to_mcid is not None:
        episode.km_days = (episode.days_to_mcid, True)
        episode.km_sessions = (float(episode.sessions_to_mcid or 0), True)
    else:
        episode.km_days = ((latest.at - first).total_seconds() / 86400, False)
        episode.km_sessions = (float(bisect_right(data.sessions, latest.at)), False)
    return episode


def _unanswered_in_a_row(prompts: tuple[Prompt, ...], now: datetime) -> int:
    """How many of the latest prompts, whose answer time has passed, went unanswered one after another."""
    count = 0
    # Newest first; of prompts sent at the same moment, an answered one first (the others are not after it).
    for prompt in sorted(prompts, key=lambda p: (p.sent_at, p.answered_at is not None), reverse=True):
        if now - prompt.sent_at < ANSWER_WITHIN and prompt.answered_at is None:
            continue  # still open: not yet unanswered
        if prompt.answered_at is not None:
            break
        count += 1
    return count
