"""The what-to-expect email carries the first session as an .ics file: its time, the clinic's address, no diagnosis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar, Event

from engage import clock
from engage.config import get_settings
from engage.content.calendar import visit_ics
from engage.content.condition_words import condition_words_in
from engage.db import session_scope
from engage.delivery.providers.base import OutgoingEmail
from engage.delivery.send_checks import render
from engage.records.models import Message
from tests import seed


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _what_to_expect(session, locale: str = "en") -> Message:  # type: ignore[no-untyped-def]
    clinic = seed.clinic(session)
    ana = seed.patient(session, clinic.id, email="ana@example.com")
    ana.locale = locale
    seed.enrolled(session, ana.id)
    [message] = [m for m in seed.messages(session, ana.id) if m.template == "what-to-expect"]
    return message


def test_what_to_expect_email_attaches_the_first_session_as_a_calendar_event(db_url: str) -> None:
    with session_scope() as session:
        message = _what_to_expect(session)
        appointment = message.appointment
        assert appointment is not None
        first = min(appointment.plan.appointments, key=lambda a: a.start_at)
        payload = render(session, message).payload
        again = render(session, message).payload
        address, start, end = message.patient.clinic.address, _utc(first.start_at), _utc(first.end_at)
        message_id = message.id

    assert isinstance(payload, OutgoingEmail) and isinstance(again, OutgoingEmail)
    [attached] = payload.attachments
    assert attached.filename.endswith(".ics") and attached.content_type == "text/calendar"
    [event] = Calendar.from_ical(attached.data).walk("VEVENT")
    assert event.decoded("dtstart") == start and event.decoded("dtend") == end
    assert str(event["location"]) == " ".join(address.split())
    assert str(event["uid"]) == f"engage-{message_id}@backinmotion.example"
    [event_again] = Calendar.from_ical(again.attachments[0].data).walk("VEVENT")
    assert event_again["uid"] == event["uid"]  # a re-send updates the same calendar entry
    summary = str(event["summary"])
    assert summary == "Appointment"
    assert condition_words_in(summary, [*get_settings().condition_words, "sciatica", "dry needling"]) == []


def test_the_calendar_summary_is_in_the_patients_language(db_url: str) -> None:
    with session_scope() as session:
        payload = render(session, _what_to_expect(session, "es")).payload

    assert isinstance(payload, OutgoingEmail)
    [event] = Calendar.from_ical(payload.attachments[0].data).walk("VEVENT")
    assert str(event["summary"]) == "Cita"


def test_other_emails_carry_no_attachment(db_url: str) -> None:
    with session_scope() as session:
        clinic = seed.clinic(session)
        ana = seed.patient(session, clinic.id, email="ana@example.com")
        seed.enrolled(session, ana.id)
        others = [
            m for m in seed.messages(session, ana.id) if m.channel.value == "email" and m.template != "what-to-expect"
        ]
        payloads = [render(session, m).payload for m in others]

    assert payloads, "the shipped sequence has other emails"
    assert all(isinstance(p, OutgoingEmail) and p.attachments == () for p in payloads)


def _icalendar_ics(*, uid: str, start: datetime, end: datetime, location: str, summary: str) -> bytes:
    """The file as the ``icalendar`` objects write it (what :func:`visit_ics` wrote before it used strings)."""
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
    event.add("location", " ".join(location.split()))
    calendar.add_component(event)
    return calendar.to_ical()


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
_when = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(uid=_text, location=_text, summary=_text, start=_when, minutes=st.integers(1, 600))
def test_the_calendar_file_is_byte_for_byte_what_icalendar_writes(
    uid: str, location: str, summary: str, start: datetime, minutes: int
) -> None:
    end = start + timedelta(minutes=minutes)
    with clock.frozen(datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC)):
        ours = visit_ics(uid=uid, start=start, end=end, location=location, summary=summary)
        theirs = _icalendar_ics(uid=uid, start=start, end=end, location=location, summary=summary)
    assert ours == theirs
