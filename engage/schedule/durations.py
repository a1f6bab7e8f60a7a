"""Signed durations as people write them: ``30m``, ``2h``, ``-1d``, ``1d12h``, ``7d``."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)([wdhm])")
_WHOLE = re.compile(r"[+-]?(?:\d+[wdhm])+")
_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}


def parse_duration(text: str) -> timedelta:
    """Parse ``[+-]<n><unit>...`` (units w, d, h, m). Raises ValueError naming the bad text."""
    cleaned = text.strip().replace(" ", "").lower()
    if not _WHOLE.fullmatch(cleaned):
        raise ValueError(f"not a duration: {text!r} (write e.g. 30m, 2h, -1d, 1d12h)")
    total = sum((int(n) * _UNITS[unit] for n, unit in _PART.findall(cleaned)), timedelta())
    return -total if cleaned.startswith("-") else total


def format_duration(value: timedelta) -> str:
    """The inverse of :func:`parse_duration` for whole minutes: ``timedelta(days=1, hours=12)`` -> ``1d12h``."""
    minutes = int(value.total_seconds() // 60)
    sign, minutes = ("-", -minutes) if minutes < 0 else ("", minutes)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    text = "".join(f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (mins, "m")) if n)
    return sign + (text or "0m")
