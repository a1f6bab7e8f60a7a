"""PURE time arithmetic for planning: local wall times, quiet hours, DST.

Nothing here reads the clock or the database; every function is a function of its
arguments, so property tests can pin the laws.

Conventions (deterministic, and what a clinic would expect):

- **Nonexistent local times** (the hour skipped when clocks spring forward) are
  resolved with the offset in force *before* the change, i.e. they move forward by
  the length of the gap: 02:30 on a spring-forward night in New York is 03:30 EDT.
  This is PEP 495's ``fold=0`` reading.
- **Ambiguous local times** (the hour repeated when clocks fall back) take the
  *first* occurrence (``fold=0``, the earlier instant).
- **Quiet hours** are a half-open local interval ``[start, end)``: ``20:00–08:00``
  means 20:00 is quiet and 08:00 is allowed. When ``start > end`` the interval wraps
  midnight; ``start == end`` means no quiet hours at all (a clinic says so with an
  explicit ``off``; see :func:`parse_window`).
- **Shifting forward** puts a message at the end of the quiet interval (the next
  allowed minute, e.g. 08:00). **Shifting backward** puts it at the last allowed
  minute before the quiet interval began (e.g. 19:59).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_QUIET_START = time(20, 0)
DEFAULT_QUIET_END = time(8, 0)
#: The channels a clinic's ``quiet_hours`` JSON may name (``engage.models.Channel`` values).
QUIET_HOURS_CHANNELS = ("sms", "email")
#: What a clinic writes to turn quiet hours off for a channel.
OFF = "off"
_MINUTE = timedelta(minutes=1)
_HHMM = re.compile(r"\s*(\d{1,2}):(\d{2})\s*")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuietHours:
    """A local-time interval ``[start, end)`` in which no message may go out."""

    start: time = DEFAULT_QUIET_START
    end: time = DEFAULT_QUIET_END

    @property
    def empty(self) -> bool:
        return self.start == self.end

    @property
    def wraps_midnight(self) -> bool:
        return self.start > self.end

    def contains(self, local: time) -> bool:
        """Whether the local wall time ``local`` (seconds count) lies in the quiet interval."""
        local = local.replace(tzinfo=None)
        if self.empty:
            return False
        if self.wraps_midnight:
            return local >= self.start or local < self.end
        return self.start <= local < self.end


def parse_hhmm(text: str) -> time:
    """``"08:00"`` -> ``time(8, 0)`` (00:00 to 23:59; one-digit hours allowed). Raises ValueError naming the text."""
    match = _HHMM.fullmatch(str(text))
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"not a local time of day: {text!r} (write HH:MM from 00:00 to 23:59, e.g. 09:00)")
    return time(int(match[1]), int(match[2]))


def parse_window(text: str) -> dict[str, Any]:
    """A clinic's quiet-hours setting for one channel, validated, as stored in ``Clinic.quiet_hours``.

    ``"20:00-08:00"`` -> ``{"start": "20:00", "end": "08:00"}``; ``"off"`` -> ``{"off": True}``
    (no quiet hours on that channel). Raises ValueError: both ends are required, each
    HH:MM from 00:00 to 23:59, and they must differ (an empty window is written ``off``,
    so quiet hours are never switched off by a typo).
    """
    cleaned = str(text).strip()
    if cleaned.lower() == OFF:
        return {"off": True}
    parts = cleaned.replace("\u2013", "-").split("-")
    if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        raise ValueError(f"quiet hours must be START-END, e.g. 20:00-08:00, or {OFF!r}; got {text!r}")
    start, end = parse_hhmm(parts[0]), parse_hhmm(parts[1])
    if start == end:
        raise ValueError(f"quiet hours {text!r} start and end at the same time; write {OFF!r} for no quiet hours")
    return {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}


def quiet_hours_for(policy: dict[str, Any] | None, channel: str) -> QuietHours:
    """The quiet hours for ``channel`` from a clinic's ``quiet_hours`` JSON; default 20:00–08:00.

    ``{"sms": {"start": "21:00", "end": "09:00"}}`` sets SMS; ``{"sms": {"off": true}}``
    turns quiet hours off for SMS. A channel that is missing gets the default, and so
    does a stored value that is not valid (an end missing, a bad time, start equal to
    end): this runs at send time, so it never raises, it logs a warning (no PHI: only
    the channel and what is wrong) and keeps patients on the safe default rather than
    on an empty window.
    """
    entry = policy.get(channel) if isinstance(policy, Mapping) else None
    if not entry:
        if policy is not None and not isinstance(policy, Mapping):
            _warn_bad_setting(channel, "the quiet_hours setting is not an object")
        return QuietHours()
    if isinstance(entry, Mapping) and "off" in entry:
        if entry["off"] is True and set(entry) == {"off"}:
            return QuietHours(time(0, 0), time(0, 0))
        _warn_bad_setting(channel, "off must be true and alone")
        return QuietHours()
    if not isinstance(entry, Mapping) or not entry.get("start") or not entry.get("end"):
        _warn_bad_setting(channel, "it needs both a start and an end")
        return QuietHours()
    try:
        quiet = QuietHours(start=parse_hhmm(entry["start"]), end=parse_hhmm(entry["end"]))
    except ValueError:
        _warn_bad_setting(channel, "a time is not HH:MM")
        return QuietHours()
    if quiet.empty:
        _warn_bad_setting(channel, "start equals end (write off to disable)")
        return QuietHours()
    return quiet


@lru_cache(maxsize=64)
def _warn_bad_setting(channel: str, problem: str) -> None:
    # Once per (channel, problem) a process: planning asks for every enrollment it touches.
    log.warning("a clinic's %s quiet hours are not valid (%s); using the default 20:00-08:00", channel, problem)


def describe_quiet_hours(policy: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The quiet hours in force per channel, in the stored shape (defaults filled in), for showing to staff."""
    shown: dict[str, dict[str, Any]] = {}
    for channel in QUIET_HOURS_CHANNELS:
        quiet = quiet_hours_for(policy, channel)
        shown[channel] = (
            {"off": True} if quiet.empty
            else {"start": quiet.start.strftime("%H:%M"), "end": quiet.end.strftime("%H:%M")}
        )
    return shown


def resolve_local(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall time ``at`` on ``day`` in ``tz`` (gaps move forward, folds take the first)."""
    # Round-tripping through UTC normalises a nonexistent wall time: with fold=0 zoneinfo applies the
    # pre-transition offset, which lands after the gap.
    return datetime.combine(day, at.replace(tzinfo=None), tzinfo=tz).replace(fold=0).astimezone(timezone.utc)


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


def add_local_days(instant: datetime, days: int, tz: ZoneInfo) -> datetime:
    """``instant`` moved by whole calendar days in ``tz``, keeping its wall time (DST-correct)."""
    if days == 0:
        return instant.astimezone(timezone.utc)
    local = instant.astimezone(tz)
    return resolve_local(local.date() + timedelta(days=days), local.timetz(), tz)


def is_quiet(instant: datetime, tz: ZoneInfo, quiet: QuietHours) -> bool:
    return quiet.contains(instant.astimezone(tz).time())


def _quiet_interval(instant: datetime, tz: ZoneInfo, quiet: QuietHours) -> tuple[datetime, datetime]:
    """The UTC bounds ``[began, ends)`` of the quiet interval that contains ``instant``."""
    local = instant.astimezone(tz)
    today = local.date()
    if quiet.wraps_midnight and local.time() >= quiet.start:
        start_day, end_day = today, today + timedelta(days=1)
    elif quiet.wraps_midnight:
        start_day, end_day = today - timedelta(days=1), today
    else:
        start_day = end_day = today
    return resolve_local(start_day, quiet.start, tz), resolve_local(end_day, quiet.end, tz)


def shift_forward(instant: datetime, tz: ZoneInfo, quiet: QuietHours) -> datetime:
    """``instant`` if it is allowed, else the first allowed minute after its quiet interval."""
    for _ in range(3):  # a DST change inside the interval can land once more in quiet time
        if not is_quiet(instant, tz, quiet):
            return instant.astimezone(timezone.utc)
        _, ends = _quiet_interval(instant, tz, quiet)
        instant = ends if ends > instant else instant + _MINUTE
    return instant.astimezone(timezone.utc)


def shift_backward(instant: datetime, tz: ZoneInfo, quiet: QuietHours) -> datetime:
    """``instant`` if it is allowed, else the last allowed minute before its quiet interval began."""
    for _ in range(3):
        if not is_quiet(instant, tz, quiet):
            return instant.astimezone(timezone.utc)
        began, _ = _quiet_interval(instant, tz, quiet)
        candidate = began - _MINUTE
        instant = candidate if candidate < instant else instant - _MINUTE
    return instant.astimezone(timezone.utc)


def place(
    due: datetime,
    tz: ZoneInfo,
    quiet: QuietHours,
    *,
    not_after: datetime | None = None,
) -> datetime:
    """Where a message due at ``due`` goes once quiet hours are respected.

    It moves forward to the next allowed minute; when ``not_after`` is given (a step
    *before* its anchor, e.g. a reminder before an appointment) and moving forward
    would reach it, the message moves backward instead, to the end of the previous
    allowed window, so a reminder never arrives after the visit it announces.
    """
    forward = shift_forward(due, tz, quiet)
    if not_after is None or forward < not_after:
        return forward
    return shift_backward(due, tz, quiet)
