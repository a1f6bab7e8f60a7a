"""The front desk's day in a real browser at a phone's width (360 px; each page also laid out at a desk's, 1280 px),
against a real ``engage serve`` on PostgreSQL: see today, answer two threads, cancel a visit and undo it, find a
patient by the last 4 digits of their phone and by date of birth. Every page: axe-core finds no serious or critical
violation, nothing is wider than the screen, and a screenshot is kept (``screenshots/``, printed)."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from engage.clock import utcnow
from engage.conversation.inbound import InboundSms, receive_sms
from engage.db import session_scope
from engage.records.models import Appointment, AppointmentStatus, Message
from engage.records.patients import add_patient
from engage.records.plans import create_plan
from engage.schedule.enrollments import enroll
from engage.schedule.reconcile import reconcile_patient
from engage.web.staff.pages import local
from tests import seed
from tests.browser import Screenshots, look_at_widths, serve

pytestmark = pytest.mark.browser
TZ = "America/New_York"


@pytest.fixture(scope="module")
def shots() -> Screenshots:
    shots = Screenshots()
    print(f"\nscreenshots of the front desk's day: {shots.folder}")
    return shots


def _seed() -> dict[str, int]:
    today = utcnow().astimezone(ZoneInfo(TZ)).date()
    with session_scope() as session:
        clinic = seed.clinic(session)
        seed.staff(session, clinic.id, "desk@backinmotion.example", "front_desk")
        ana = add_patient(
            session,
            clinic_id=clinic.id,
            first_name="Ana",
            last_name="Ruiz",
            phone="+14155550123",
            date_of_birth="1975-06-01",
            actor="test",
        ).patient
        plan = create_plan(
            session,
            patient_id=ana.id,
            condition="sciatica",
            modality="dry needling",
            first=f"{today.isoformat()}T12:00",
            sessions=3,
            every=timedelta(days=1),
            allow_past=True,
            actor="test",
        )
        enroll(session, ana.id, plan.id, seed.SEQUENCE, enrolled_by="test")
        john = add_patient(
            session,
            clinic_id=clinic.id,
            first_name="John",
            last_name="Smith",
            phone="+12125550142",
            date_of_birth="1980-03-14",
            actor="test",
        ).patient
        add_patient(
            session,
            clinic_id=clinic.id,
            first_name="John",
            last_name="Smith",
            phone="+17185550199",
            date_of_birth="1955-07-02",
            actor="test",
        )
        receive_sms(
            session,
            InboundSms("SMa", "+14155550123", "+14155550100", "Can I bring my own towel?"),
            replan=reconcile_patient,
        )
        receive_sms(
            session,
            InboundSms("SMj", "+12125550142", "+14155550100", "Is there parking nearby?"),
            replan=reconcile_patient,
        )
        session.flush()
        return {"ana": ana.id, "john": john.id, "plan": plan.id}


def test_the_front_desk_runs_the_day(pg_url: str, browser: Browser, shots: Screenshots) -> None:
    ids = _seed()
    with session_scope() as session:
        second = session.scalars(
            select(Appointment).where(Appointment.plan_id == ids["plan"]).order_by(Appointment.start_at)
        ).all()[1]
        second_id, second_when = second.id, local(second.start_at, TZ)
    with serve(pg_url) as base:
        page = browser.new_context(viewport={"width": 360, "height": 800}).new_page()
        page.set_default_timeout(30_000)
        page.goto(base + "/login")
        page.get_by_label("Email address").fill("desk@backinmotion.example")
        page.get_by_label("Password").fill(seed.PASSWORD)
        page.get_by_role("button", name="Sign in").click()

        # See today: Ana's first session today, her second tomorrow, and two texts waiting.
        expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()
        today = page.locator("section", has=page.get_by_role("heading", name=re.compile(r"^Today, ")))
        expect(today.get_by_role("row").filter(has_text="Ana Ruiz")).to_contain_text("1 of 3")
        expect(page.get_by_role("link", name=re.compile(r"Inbox \(2\)"))).to_be_visible()
        look_at_widths(page, shots, "front desk today")

        # Answer two threads.
        for name, text in (("Ana Ruiz", "Yes, bring one. See you soon!"), ("John Smith", "Yes, on Elm St.")):
            page.get_by_role("link", name=re.compile(r"^Inbox")).click()
            look_at_widths(page, shots, "front desk inbox")
            page.get_by_role("link", name=name).click()
            page.get_by_label(re.compile("Your reply to")).fill(text)
            look_at_widths(page, shots, f"front desk thread of {name}")
            page.get_by_role("button", name="Send reply").click()
            expect(page.get_by_role("status")).to_contain_text("Reply queued")
            expect(page.locator("ol.thread")).to_contain_text(text)
            page.get_by_label("What was done").fill("answered by SMS")
            page.get_by_role("button", name="Mark the thread handled").click()
            expect(page.get_by_role("status")).to_contain_text(f"Thread of {name} marked handled")
        with session_scope() as session:
            replies = session.scalars(select(Message.context).where(Message.step_key == "staff-reply")).all()
        assert sorted(r["body"] for r in replies) == ["Yes, bring one. See you soon!", "Yes, on Elm St."]
        expect(page.get_by_role("link", name="Inbox", exact=True)).to_be_visible()  # no count: nothing waits

        # Cancel Ana's second session (asked first, naming it), then undo.
        page.goto(f"{base}/patients/{ids['ana']}")
        look_at_widths(page, shots, "front desk patient page")
        cancel = page.get_by_role("button", name=f"Cancel: session 2, {second_when}")
        cancel.scroll_into_view_if_needed()
        expect(cancel).to_be_in_viewport()
        cancel.click()
        expect(page.get_by_role("heading", name="Cancel this visit?")).to_be_visible()
        expect(page.locator("main")).to_contain_text(f"Ana Ruiz, session 2, {second_when}")
        look_at_widths(page, shots, "front desk cancel confirmation")
        page.get_by_role("button", name="Yes, cancel the visit").click()
        expect(page.get_by_role("status")).to_contain_text(f"Appointment cancelled (session 2, {second_when})")
        with session_scope() as session:
            assert session.get_one(Appointment, second_id).status is AppointmentStatus.CANCELLED
        page.get_by_role("button", name=f"Book again: cancelled visit of {second_when}").click()
        expect(page.get_by_role("status")).to_contain_text(f"Appointment booked again (session 2, {second_when})")
        with session_scope() as session:
            assert session.get_one(Appointment, second_id).status is AppointmentStatus.BOOKED
        look_at_widths(page, shots, "front desk patient page after undo")

        # Find John Smith (the one born 1980) by the last 4 digits of his phone, then by his date of birth.
        for typed in ("0142", "03/14/1980"):
            page.get_by_role("link", name="Patients", exact=True).click()
            page.get_by_label(re.compile("^Search by name")).fill(typed)
            page.get_by_role("button", name="Search").click()
            rows = page.get_by_role("row").filter(has=page.get_by_role("link", name="Smith, John"))
            expect(rows).to_have_count(1)
            expect(rows).to_contain_text("03/14/1980")
            look_at_widths(page, shots, f"front desk search {typed}")
        page.get_by_role("link", name="Smith, John").click()
        expect(page.get_by_role("heading", name="John Smith", level=1)).to_be_visible()
        expect(page.locator(".patient-head")).to_contain_text("born 03/14/1980")
        look_at_widths(page, shots, "front desk john smith")
