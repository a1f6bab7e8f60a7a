"""A front-desk day in a real browser (headless Chromium) against a real ``engage serve`` on PostgreSQL.

Every page visited is checked with axe-core (no serious or critical violations) and
photographed into the screenshots folder, which the test prints.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, select

from engage.clock import utcnow
from engage.db import session_scope
from engage.records.models import Appointment, Message, MessageStatus, Outcome, Patient
from tests import seed
from tests.browser import Screenshots, assert_accessible, serve, settle

pytestmark = pytest.mark.browser
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def shots() -> Screenshots:
    shots = Screenshots()
    print(f"\nscreenshots of the staff pages: {shots.folder}")
    return shots


def _page(browser: Browser) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(20_000)
    return page


def _visit(page: Page, shots: Screenshots, name: str) -> None:
    """Every page a person sees: accessible, and photographed."""
    settle(page)
    assert_accessible(page)
    shots.take(page, name)


def _sign_in(page: Page, base: str, email: str) -> None:
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(seed.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()


def _seed() -> dict[str, int]:
    with session_scope() as session:
        clinic = seed.clinic(session, name="Back in Motion")
        seed.staff(session, clinic.id, "desk@backinmotion.example", "front_desk")
        seed.staff(session, clinic.id, "admin@backinmotion.example", "admin")
        ben = seed.patient(session, clinic.id, "Ben", "Okafor", phone="+14155550177", email="ben@example.com")
        seed.enrolled(session, ben.id, days_ahead=3)
        stuck = seed.messages(session, ben.id)[0]
        stuck.status, stuck.handed_at, stuck.last_error = MessageStatus.UNKNOWN, utcnow(), "no answer from provider"
        reply = seed.flagged_reply(session, clinic.id, ben.id, "Can I come Friday instead?")
        for days_ago, score in ((21, 8), (14, 6), (7, 5), (1, 3)):
            session.add(
                Outcome(patient_id=ben.id, score=score, source="sms", recorded_at=utcnow() - timedelta(days=days_ago))
            )
        other = seed.clinic(session, name="Elsewhere Physio", email="front@elsewhere.example")
        seed.staff(session, other.id, "desk@elsewhere.example", "front_desk")
        return {"clinic": clinic.id, "ben": ben.id, "stuck": stuck.id, "reply": reply.id}


def _patients() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Patient)) or 0


def test_a_front_desk_day(pg_url: str, browser: Browser, shots: Screenshots) -> None:
    ids = _seed()
    with serve(pg_url) as base:
        page = _page(browser)
        page.goto(base + "/")
        _visit(page, shots, "login")
        _sign_in(page, base, "desk@backinmotion.example")
        _visit(page, shots, "today")

        # Today lists the message whose fate is unknown; the front desk marks it sent.
        row = page.get_by_role("row").filter(has_text="Ben Okafor").filter(has_text="unknown")
        row.get_by_label(f"Resolve message {ids['stuck']}").select_option("mark_sent")
        row.get_by_label("Reason").fill("Ben confirmed by phone he got it")
        row.get_by_role("button", name="Resolve").click()
        expect(page.get_by_role("status")).to_contain_text(f"Message {ids['stuck']} is now sent")
        with session_scope() as session:
            assert session.get_one(Message, ids["stuck"]).status is MessageStatus.SENT

        # A new patient with a bad phone: the error is beside the field and nothing is saved.
        page.get_by_role("link", name="Patients").click()
        _visit(page, shots, "patients")
        page.get_by_role("button", name="New patient").click()
        before = _patients()
        page.get_by_label("First name").fill("Ana")
        page.get_by_label("Last name").fill("Ruiz")
        page.get_by_label("Mobile phone").fill("555")
        page.get_by_label("Email address").fill("ana@example.com")
        page.get_by_role("button", name="Add patient").click()
        expect(page.locator("#e-phone")).to_contain_text("invalid phone number")
        expect(page.get_by_label("Mobile phone")).to_have_attribute("aria-invalid", "true")
        _visit(page, shots, "new patient with a bad phone")
        assert _patients() == before
        page.get_by_label("Mobile phone").fill("(415) 555-0142")
        page.get_by_role("button", name="Add patient").click()
        expect(page.get_by_role("heading", name="Ana Ruiz", level=1)).to_be_visible()
        assert _patients() == before + 1
        patient_url = page.url
        page.get_by_role("link", name="Edit contact details").click()
        expect(page.get_by_label("Mobile phone")).to_have_value("+14155550142")
        _visit(page, shots, "edit patient")
        page.go_back()

        # A plan of three weekly sessions, the first in five days at 10:00 local time.
        first = (datetime.now(NEW_YORK) + timedelta(days=5)).replace(hour=10, minute=0, second=0, microsecond=0)
        page.get_by_label("First session (local time)").fill(first.strftime("%Y-%m-%dT%H:%M"))
        page.get_by_label("Sessions", exact=True).fill("3")
        page.get_by_role("button", name="Create plan").click()
        expect(page.get_by_role("status")).to_contain_text("Plan created with 3 appointments")

        # Enroll: every message and its local time first, then the timeline.
        page.get_by_role("button", name="Preview messages").click()
        expect(page.get_by_role("heading", name=re.compile("Enroll Ana Ruiz"))).to_be_visible()
        reminder_day_before = (first - timedelta(days=1)).strftime("%a %d %b %Y, 10:00")
        expect(page.get_by_role("row").filter(has_text="visit-reminder").first).to_contain_text(reminder_day_before)
        _visit(page, shots, "enroll preview")
        page.get_by_role("button", name="Confirm enrollment").click()
        expect(page.get_by_role("status")).to_contain_text("messages planned")
        timeline = page.locator("#timeline")
        expect(timeline.get_by_role("row").filter(has_text="visit-reminder")).to_have_count(3)
        first_reminder = timeline.get_by_role("row").filter(has_text="visit-reminder").first
        first_reminder.get_by_role("button", name=re.compile("Show")).click()
        expect(timeline.locator("pre.body").first).to_contain_text("a reminder of your appointment")
        _visit(page, shots, "patient page with timeline")

        # Move the first session a day later at 11:00: its reminder moves with it.
        moved = first + timedelta(days=1, hours=1)
        form = page.locator("form").filter(has=page.get_by_label("Move session 1 to"))
        form.get_by_label("Move session 1 to").fill(moved.strftime("%Y-%m-%dT%H:%M"))
        form.get_by_role("button", name="Move").click()
        expect(page.get_by_role("status")).to_contain_text("Appointment moved; ")
        expect(page.get_by_role("status")).to_contain_text("moved")
        timeline.locator("summary").click()  # folded again on the page after the move: opened by hand
        expect(timeline.get_by_role("row").filter(has_text="visit-reminder").first).to_contain_text(
            (moved - timedelta(days=1)).strftime("%Y-%m-%d 11:00")
        )
        ana_id = int(patient_url.rsplit("/", 1)[1])
        with session_scope() as session:
            appointment = session.scalars(
                select(Appointment).where(Appointment.plan.has(patient_id=ana_id)).order_by(Appointment.start_at)
            ).first()
            assert appointment is not None and appointment.start_at == moved.astimezone(appointment.start_at.tzinfo)
            reminder = session.scalar(
                select(Message).where(Message.appointment_id == appointment.id, Message.step_key == "visit-reminder")
            )
            assert reminder is not None and reminder.due_at == appointment.start_at - timedelta(hours=24)

        # The inbox: Ben's thread with his question, handled with a note.
        page.get_by_role("link", name=re.compile(r"^Inbox")).click()
        expect(page.get_by_text("Can I come Friday instead?")).to_be_visible()
        _visit(page, shots, "inbox")
        page.get_by_role("link", name="Ben Okafor").click()
        page.get_by_label("What was done").fill("Called back, moved to Friday")
        page.get_by_role("button", name="Mark the thread handled").click()
        expect(page.get_by_role("status")).to_contain_text("Thread of Ben Okafor marked handled")
        expect(page.get_by_role("row").filter(has_text="Ben Okafor")).to_contain_text("handled")

        # Ben's pain scores, drawn by Chart.js.
        page.goto(f"{base}/patients/{ids['ben']}#replies")
        expect(page.get_by_role("img", name=re.compile("Pain scores over time, 0 to 10"))).to_be_visible()
        page.wait_for_function("() => document.querySelector('#pain-chart').dataset.drawn === '1'")
        _visit(page, shots, "patient page with pain chart")

        for link, name in (("Messages", "messages"), ("Sequences", "sequences")):
            page.get_by_role("link", name=link, exact=True).click()
            _visit(page, shots, name)

        # Another clinic's front desk cannot open Ana's page: 404, as if it did not exist.
        stranger = _page(browser)
        _sign_in(stranger, base, "desk@elsewhere.example")
        response = stranger.goto(patient_url)
        assert response is not None and response.status == 404
        expect(stranger.get_by_role("heading", name="Not found")).to_be_visible()
        _visit(stranger, shots, "another clinic gets 404")

        # The admin's settings page.
        admin = _page(browser)
        _sign_in(admin, base, "admin@backinmotion.example")
        admin.get_by_role("link", name="Settings").click()
        _visit(admin, shots, "settings")

        # Sign out: the session is gone, pages ask to sign in again.
        page.get_by_role("button", name=re.compile("Sign out")).click()
        expect(page.get_by_role("status")).to_contain_text("You are signed out")
        page.goto(base + "/")
        expect(page).to_have_url(re.compile(r"/login\?next="))


def test_front_desk_checks_a_csv_export_then_imports_it(pg_url: str, browser: Browser, shots: Screenshots) -> None:
    _seed()
    first = (datetime.now(NEW_YORK) + timedelta(days=4)).replace(hour=9, minute=0, second=0, microsecond=0)
    header = "patient_external_id,first_name,last_name,phone,email,appointment_external_id,start,sequence\n"
    good = header + "".join(
        f"PMS-7,Carla,Mendes,(415) 555-0190,carla@example.com,V-{n},{(first + timedelta(weeks=n)):%Y-%m-%dT%H:%M},"
        f"{seed.SEQUENCE}\n"
        for n in range(3)
    )
    bad = good.replace("(415) 555-0190", "555", 1)
    with serve(pg_url) as base:
        page = _page(browser)
        _sign_in(page, base, "desk@backinmotion.example")
        page.get_by_role("link", name="Patients").click()
        page.get_by_role("button", name="Import appointments").click()
        expect(page.get_by_role("heading", name="Import appointments")).to_be_visible()
        _visit(page, shots, "import appointments")

        # A file over 5 MB is refused beside the field before it is sent.
        field = page.get_by_label("CSV file")
        field.set_input_files(files=[{"name": "everything.csv", "mimeType": "text/csv", "buffer": b"x" * 5_000_001}])
        too_big = "The file is larger than 5.0 MB: import it in parts."
        expect(page.locator("#h-file")).to_have_text(too_big)
        expect(field).to_have_attribute("aria-invalid", "true")
        page.get_by_role("button", name="Check file").click()  # the browser keeps the form: nothing is sent
        assert field.evaluate("input => input.validationMessage") == too_big
        expect(page.locator("#e-file")).to_have_count(0)  # the server's answer would put it there
        _visit(page, shots, "import with a file too big")

        # A row with a bad phone: listed with its line, nothing written.
        before = _patients()
        page.get_by_label("CSV file").set_input_files(
            files=[{"name": "export.csv", "mimeType": "text/csv", "buffer": bad.encode()}]
        )
        page.get_by_role("button", name="Check file").click()
        expect(page.get_by_role("alert")).to_contain_text("export.csv has 1 problem")
        expect(page.get_by_role("row").filter(has_text="line 2")).to_contain_text("invalid phone number")
        _visit(page, shots, "import with a bad row")
        assert _patients() == before

        # The corrected file: what importing would do, then the import.
        page.get_by_label("CSV file").set_input_files(
            files=[{"name": "export.csv", "mimeType": "text/csv", "buffer": good.encode()}]
        )
        page.get_by_role("button", name="Check file").click()
        expect(page.get_by_role("status")).to_contain_text("every row is valid. Nothing has been written yet.")
        expect(page.locator(".counts li").filter(has_text="new").first).to_have_text(re.compile(r"^\s*3\s+new"))
        _visit(page, shots, "import checked")
        assert _patients() == before
        page.get_by_role("button", name="Import", exact=True).click()
        expect(page.get_by_role("status")).to_contain_text("Imported export.csv.")
        _visit(page, shots, "import done")
        assert _patients() == before + 1
        with session_scope() as session:
            carla = session.scalars(select(Patient).where(Patient.external_id == "PMS-7")).one()
            assert len(seed.messages(session, carla.id)) > 0

        page.get_by_role("navigation", name="Main").get_by_role("link", name="Patients").click()
        page.get_by_label(re.compile("^Search by name")).fill("Mendes")
        expect(page.get_by_role("link", name=re.compile("Mendes, Carla"))).to_be_visible()
