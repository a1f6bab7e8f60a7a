"""A clinic's quiet-hours setting: its stored shape, validation, and reading it back safely.

``Clinic.quiet_hours`` maps a channel to ``{"start": "20:00", "end": "08:00"}`` or
``{"off": true}``. Parsing refuses what staff get wrong; reading at send time never
raises and falls back to the safe default. The arithmetic that places messages
outside these hours is :mod:`engage.schedule.windows`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from functools import lru_cache
from typing import Any

DEFAULT_QUIET_START = time(20, 0)
DEFAULT_QUIET_END = time(8, 0)
#: The channels a clinic's ``quiet_hours`` JSON may name (``engage.records.models.Channel`` values).
QUIET_HOURS_CHANNELS = ("sms", "email")
#: What a clinic writes to turn quiet hours off for a channel.
OFF = "off"
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
            {"off": True}
            if quiet.empty
            else {"start": quiet.start.strftime("%H:%M"), "end": quiet.end.strftime("%H:%M")}
        )
    return shown
