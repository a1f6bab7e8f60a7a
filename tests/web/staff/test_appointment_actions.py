"""Safe appointment actions on the patient page: every row's buttons name that row's visit, a cancel or no-show
asks first (naming the patient and the visit), a cancelled visit can be booked again with its reminders, and
sessions are numbered over the visits that are not cancelled."""

from __future__ import annotations

import html
import re
from datetime import timedelta

from sqlalchemy import select

from engage.db import session_scope
from engage.records.models import Appointment, AppointmentStatus, Message, MessageStatus
from engage.schedule.appointments import add_appointment
from engage.web.staff.pages import local
from tests import seed
from tests.web.staff.support import HTML, signed_in


def _clinic(sessions: int = 6) -> dict[str, int]:
    with session_scope() as session:
        clinic = seed.clinic(session)
        seed.staff(session, clinic.id, "desk@clinic.example", "front_desk")
        ana = seed.patient(session, clinic.id, email="ana@example.com")
        plan_id = seed.enrolled(session, ana.id, sessions=sessions)
        return {"ana": ana.id, "plan": plan_id}


def _rows(page: str) -> list[tuple[str, str, dict[str, str]]]:
    """(session number, start, {accessible name: href or form action}) for each row of the sessions table."""
    table = page.split("<caption>Sessions of plan", 1)[1].split("</table>", 1)[0]
    rows = []
    for row in table.split("<tr>")[2:]:
        cells = re.findall(r"<td>([^<]*)</td>", row)
        names: dict[str, str] = {}
        for action, label in re.findall(r'<form[^>]*action="([^"]+)".*?aria-label="([^"]+)".*?</form>', row, re.S):
            names[html.unescape(label)] = action
        for href, label in re.findall(r'<a href="([^"]+)"[^>]*aria-label="([^"]+)"', row):
            names[html.unescape(label)] = href
        rows.append((cells[0], cells[1], names))
    return rows


def _appointments(plan_id: int) -> list[Appointment]:
    with session_scope() as session:
        return list(
            session.scalars(select(Appointment).where(Appointment.plan_id == plan_id).order_by(Appointment.start_at))
        )


def test_each_rows_buttons_name_that_rows_session_and_time(db_url: str) -> None:
    ids = _clinic()
    client, _ = signed_in("desk@clinic.example")
    rows = _rows(client.get(f"/patients/{ids['ana']}", headers=HTML).text)
    visits = _appointments(ids["plan"])
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    for (number, start, names), visit in zip(rows, visits, strict=True):
        when = local(visit.start_at, "America/New_York")
        assert start == when
        assert names[f"Cancel: session {number}, {when}"] == f"/appointments/{visit.id}/cancel"
        assert names[f"Move session {number}, {when}"] == f"/appointments/{visit.id}/move"
    assert len({label for _, _, names in rows for label in names}) == sum(len(n) for _, _, n in rows)


def test_cancel_asks_first_naming_the_visit_and_undo_books_it_again_with_its_reminders(db_url: str) -> None:
    ids = _clinic()
    client, csrf = signed_in("desk@clinic.example")
    third = _appointments(ids["plan"])[2]
    when = local(third.start_at, "America/New_York")
    rows = _rows(client.get(f"/patients/{ids['ana']}", headers=HTML).text)
    confirm_url = rows[2][2][f"Cancel: session 3, {when}"]

    confirm = client.get(confirm_url, headers=HTML)
    assert confirm.status_code == 200 and "Cancel this visit?" in confirm.text
    assert "Ana Ruiz" in confirm.text and f"session 3, {when}" in confirm.text
    assert _appointments(ids["plan"])[2].status is AppointmentStatus.BOOKED, "asking writes nothing"

    done = client.post(f"/appointments/{third.id}/cancel", data={"csrf_token": csrf}, headers=HTML)
    assert f"Appointment cancelled (session 3, {when})" in done.text
    assert 'Undo: "Book again" on the patient page' in html.unescape(done.text)
    rows = _rows(done.text)
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5"], "sessions are numbered over the visits kept"
    assert f'aria-label="Book again: cancelled visit of {when}"' in done.text

    with session_scope() as session:
        pending = set(
            session.scalars(
                select(Message.id).where(Message.appointment_id == third.id, Message.status == MessageStatus.SCHEDULED)
            )
        )
    assert pending == set()
    again = client.post(f"/appointments/{third.id}/rebook", data={"csrf_token": csrf}, headers=HTML)
    assert f"Appointment booked again (session 3, {when})" in again.text
    assert [r[0] for r in _rows(again.text)] == ["1", "2", "3", "4", "5", "6"]
    with session_scope() as session:
        revived = session.scalars(
            select(Message.step_key).where(
                Message.appointment_id == third.id, Message.status == MessageStatus.SCHEDULED
            )
        ).all()
    assert "visit-reminder" in revived


def test_a_cancel_and_a_re_add_leave_a_six_session_plan_at_six_sessions(db_url: str) -> None:
    ids = _clinic()
    client, csrf = signed_in("desk@clinic.example")
    third = _appointments(ids["plan"])[2]
    client.post(f"/appointments/{third.id}/cancel", data={"csrf_token": csrf}, headers=HTML)
    with session_scope() as session:
        add_appointment(session, plan_id=ids["plan"], start=third.start_at + timedelta(days=1), actor="t")
    page = client.get(f"/patients/{ids['ana']}", headers=HTML).text
    assert [r[0] for r in _rows(page)] == ["1", "2", "3", "4", "5", "6"]
    assert "Cancelled visits of plan" in page
    # Booking the cancelled one again now collides with nothing (a day apart), so it becomes session 3 of 7.
    answer = client.post(f"/appointments/{third.id}/rebook", data={"csrf_token": csrf}, headers=HTML)
    assert [r[0] for r in _rows(answer.text)] == [str(n) for n in range(1, 8)]


def test_booking_again_over_another_visit_is_refused_with_the_reason_and_nothing_written(db_url: str) -> None:
    ids = _clinic(sessions=2)
    client, csrf = signed_in("desk@clinic.example")
    first = _appointments(ids["plan"])[0]
    client.post(f"/appointments/{first.id}/cancel", data={"csrf_token": csrf}, headers=HTML)
    with session_scope() as session:
        other = add_appointment(session, plan_id=ids["plan"], start=first.start_at, actor="t").appointment.id
    answer = client.post(f"/appointments/{first.id}/rebook", data={"csrf_token": csrf}, headers=HTML)
    assert f"Appointment not changed: that time overlaps appointment {other} of the same patient" in answer.text
    # Both visits start at the same time, so look the first one up by id rather than by its place in the list.
    assert {a.id: a.status for a in _appointments(ids["plan"])}[first.id] is AppointmentStatus.CANCELLED


def test_the_confirmation_page_is_only_for_cancel_and_no_show(db_url: str) -> None:
    ids = _clinic(sessions=1)
    client, _ = signed_in("desk@clinic.example")
    visit = _appointments(ids["plan"])[0]
    assert client.get(f"/appointments/{visit.id}/no-show", headers=HTML).status_code == 200
    assert client.get(f"/appointments/{visit.id}/complete", headers=HTML).status_code == 404
    assert client.get(f"/appointments/{visit.id + 999}/cancel", headers=HTML).status_code == 404
