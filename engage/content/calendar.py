"""The add-to-calendar file (RFC 5545 ``.ics``) sent with the what-to-expect email.

The event names no condition or treatment (a calendar is shown on lock screens and shared with
family): its summary is "Appointment" with the clinic's short SMS name when it has one (that name is
checked against the condition words when saved). Times are written in UTC, so every calendar shows
the patient's local time without a time-zone table. The UID is stable per message, so a re-sent
email updates the same calendar entry instead of adding a second one.

The file is written by :func:`visit_ics` with string formatting, not by building ``icalendar`` objects (a
what-to-expect email's send spent about a tenth of its CPU there): the same bytes ``icalendar`` writes
(RFC 5545 TEXT escaping, lines folded at 75 octets), which a test checks against it for arbitrary text.
"""

from __future__ import annotations

from datetime import UTC, datetime

from engage import clock

ICS_FILENAME = "appointment.ics"
ICS_CONTENT_TYPE = "text/calendar"
_SUMMARY = {"en": "Appointment", "es": "Cita"}


def event_summary(locale: str | None, clinic_short_name: str | None) -> str:
    """``Appointment`` (or ``Cita``), with `` – <short name>`` when the clinic has one."""
    word = _SUMMARY.get((locale or "en").split("-")[0].lower(), _SUMMARY["en"])
    return f"{word} – {clinic_short_name}" if clinic_short_name else word


def visit_ics(*, uid: str, start: datetime, end: datetime, location: str, summary: str) -> bytes:
    """One VEVENT in a VCALENDAR (METHOD:PUBLISH: an entry to add, not a meeting invitation)."""
    lines = (
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//engage//appointment//EN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        _fold("SUMMARY:" + _escape(summary)),
        f"DTSTART:{_utc(start):%Y%m%dT%H%M%SZ}",
        f"DTEND:{_utc(end):%Y%m%dT%H%M%SZ}",
        f"DTSTAMP:{_utc(clock.utcnow()):%Y%m%dT%H%M%SZ}",
        _fold("UID:" + _escape(uid)),
        _fold("LOCATION:" + _escape(" ".join(location.split()))),  # a multi-line address on one line
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    )
    return "\r\n".join(lines).encode()


def _escape(text: str) -> str:
    """RFC 5545 TEXT escaping, in ``icalendar``'s order (a backslash before the characters it escapes)."""
    return (
        text.replace(r"\N", "\n")
        .replace("\\", "\\\\")
        .replace(";", r"\;")
        .replace(",", r"\,")
        .replace("\r\n", r"\n")
        .replace("\n", r"\n")
        .replace("\r", r"\n")
    )


def _fold(line: str, limit: int = 75) -> str:
    """A content line folded before ``limit`` octets (CRLF and a space), never inside a character nor an escape."""
    if len(line.encode()) < limit:
        return line
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for char in line:
        width = len(char.encode())
        if current and size + width >= limit:
            if len(current) > 1 and current[-1] in "\\^":
                carried = current.pop()
                parts.append("".join(current))
                current, size = [carried], len(carried.encode())
            else:
                parts.append("".join(current))
                current, size = [], 0
        current.append(char)
        size += width
    parts.append("".join(current))
    return "\r\n ".join(parts)


def _utc(when: datetime) -> datetime:
    # SQLite hands back naive datetimes; engage stores UTC.
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
