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

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from engage.records.quiet_hours import QuietHours

_MINUTE = timedelta(minutes=1)


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
