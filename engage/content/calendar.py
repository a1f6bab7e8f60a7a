"""The add-to-calendar file (RFC 5545 ``.ics``) sent with the what-to-expect email.

The event names no condition or treatment (a calendar is shown on lock screens and shared with
family): its summary is "Appointment" with the clinic's short SMS name when it has one (that name is
checked against the condition words when saved). Times are written in UTC, so every calendar shows
the patient's local time without a time-zone table. The UID is stable per message, so a re-sent
email updates the same calendar entry instead of adding a second one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from icalendar import Calendar, Event

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
    calendar = Calendar()
    calendar.add("prodid", "-//engage//appointment//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", clock.utcnow().astimezone(UTC))
    event.add("dtstart", _utc(start))
    event.add("dtend", _utc(end))
    event.add("summary", summary)
    event.add("location", " ".join(location.split()))  # a multi-line address on one line
    calendar.add_component(event)
    return calendar.to_ical()


def _utc(when: datetime) -> datetime:
    # SQLite hands back naive datetimes; engage stores UTC.
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
