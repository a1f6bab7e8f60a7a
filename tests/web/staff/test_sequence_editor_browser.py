"""The sequence editor in a real browser at a phone's width (360 px; each page also laid out at a desk's, 1280 px),
against a real ``engage serve`` on PostgreSQL: an admin starts a draft from the shipped sequence, adds a step (a
taken key is refused beside the field) and removes it, moves the stretch reminder to 18:00 and rewords it (the live
check shows the new text), previews it on an enrolled patient (the draft beside the published version, the
differences marked), publishes it to current patients from the dialog's dry-run summary, and finds the new time on
that patient's timeline; after a tick, the fake provider has the new text and never the old. Every page: axe-core
finds no serious or critical violation, nothing is wider than the screen; screenshots kept."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from engage import clock
from engage.clock import utcnow
from engage.config import get_settings
from engage.db import session_scope
from engage.delivery import dispatch
from engage.delivery.providers import reset_providers
from engage.records.models import Message
from engage.records.patients import add_patient
from engage.records.plans import create_plan
from engage.schedule.enrollments import enroll
from engage.schedule.plan_exercises import choose_exercises
from tests import seed
from tests.browser import Screenshots, look_at_widths, serve
from tests.fakes.provider_server import FakeProviders

pytestmark = pytest.mark.browser
TZ = "America/New_York"
ADMIN = "owner@backinmotion.example"
OLD_WORDS = "time for the stretches your practitioner picked for you"
NEW_WORDS = "your evening stretches are ready"


@pytest.fixture(scope="module")
def shots() -> Screenshots:
    shots = Screenshots()
    print(f"\nscreenshots of the sequence editor: {shots.folder}")
    return shots


@contextmanager
def fake_providers(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProviders]:
    """The fake Twilio + SendGrid server for this process's ticks (started after ``engage serve`` stopped: with
    a vendor configured, serve refuses a base URL patients cannot reach)."""
    with FakeProviders() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        reset_providers()
        yield server
    reset_providers()


def _seed() -> tuple[int, int, datetime]:
    """Ana, enrolled in the shipped sequence with exercises picked; her first session two days from now at noon.
    Returns her id, her plan's id and the first session's start (local)."""
    first = datetime.combine(utcnow().astimezone(ZoneInfo(TZ)).date() + timedelta(days=2), time(12), ZoneInfo(TZ))
    with session_scope() as session:
        clinic = seed.clinic(session)
        seed.staff(session, clinic.id, ADMIN, "admin")
        ana = add_patient(
            session,
            clinic_id=clinic.id,
            first_name="Ana",
            last_name="Ruiz",
            phone="+14155550123",
            timezone=TZ,
            actor="test",
        ).patient
        plan = create_plan(
            session,
            patient_id=ana.id,
            condition="sciatica",
            modality="dry needling",
            first=first.strftime("%Y-%m-%dT%H:%M"),
            sessions=3,
            every=timedelta(days=7),
            actor="test",
        )
        enroll(session, ana.id, plan.id, seed.SEQUENCE, enrolled_by="test")
        choose_exercises(session, plan.id, ["knee-to-chest", "figure-four"], actor="test")
        return ana.id, plan.id, first


def _stretch_due(patient_id: int) -> list[datetime]:
    with session_scope() as session:
        rows = session.scalars(
            select(Message.due_at).where(
                Message.patient_id == patient_id, Message.step_key == "stretch", Message.status == "scheduled"
            )
        ).all()
    return sorted(rows)


def test_an_admin_moves_and_rewords_the_stretch_reminder_and_publishes_it(
    pg_url: str, browser: Browser, shots: Screenshots, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana, plan, first = _seed()
    before = _stretch_due(ana)
    assert [d.astimezone(ZoneInfo(TZ)).strftime("%H:%M") for d in before] == ["09:00", "09:00"]
    with serve(pg_url) as base:
        page = browser.new_context(viewport={"width": 360, "height": 900}).new_page()
        page.set_default_timeout(30_000)
        page.goto(base + "/login")
        page.get_by_label("Email address").fill(ADMIN)
        page.get_by_label("Password").fill(seed.PASSWORD)
        page.get_by_role("button", name="Sign in").click()

        # Start from the shipped sequence.
        page.get_by_role("link", name="Sequences", exact=True).click()
        page.get_by_role("link", name="Edit Dry needling for sciatica").click()
        look_at_widths(page, shots, "sequence editor no draft yet")
        page.get_by_role("button", name="Start a draft from Dry needling for sciatica").click()
        expect(page.get_by_role("status")).to_contain_text("Draft started")

        # Add a step: a taken key gets a sentence beside the field; a new one gets empty texts the checks name.
        adding = page.locator("#add-step")
        adding.get_by_label("Key").fill("stretch")
        adding.get_by_role("button", name="Add the step").click()
        expect(page.locator("#add-step").get_by_label("Key")).to_have_accessible_description(
            re.compile("already has a step")
        )
        look_at_widths(page, shots, "sequence editor add a step, taken key")
        adding.get_by_label("Key").fill("checkin_day3")
        adding.get_by_label("How long").fill("3 days")
        adding.get_by_role("button", name="Add the step").click()
        expect(page.get_by_role("status")).to_contain_text("Step checkin_day3 added")
        added = page.locator("#step-checkin_day3")
        expect(added.get_by_label("SMS text, Spanish (sms/checkin_day3.es.txt)")).to_have_value("")
        expect(added).to_contain_text("The SMS text is empty")
        look_at_widths(page, shots, "sequence editor step added")
        added.get_by_role("button", name=re.compile(r"^Remove step \d+ \(checkin_day3\)")).click()
        expect(page.get_by_role("status")).to_contain_text("Step checkin_day3 removed")
        expect(page.locator("#step-checkin_day3")).to_have_count(0)

        # Bad input is kept, with a sentence beside each field.
        stretch = page.locator("#step-stretch")
        stretch.get_by_label("How long").fill("3 dayz")
        stretch.get_by_label("At local time of day (optional)").fill("25:00")
        page.get_by_role("button", name="Save draft").click()
        expect(page.get_by_role("status")).to_contain_text("Draft saved with 2 problems")
        expect(stretch.get_by_label("How long")).to_have_value("3 dayz")
        expect(stretch.get_by_label("How long")).to_have_accessible_description(re.compile("is not a length of time"))
        expect(stretch.get_by_label("At local time of day (optional)")).to_have_accessible_description(
            re.compile("is not a time of day")
        )
        expect(page.locator("#problems")).to_contain_text("Step 5 (stretch), time of day")
        look_at_widths(page, shots, "sequence editor bad input kept")
        page.locator("#problems").screenshot(path=str(shots.folder / "sequence-editor-360px-problems.png"))
        stretch.screenshot(path=str(shots.folder / "sequence-editor-360px-stretch-bad-input.png"))

        # Move the stretch reminder to 18:00 and reword it; the live check shows the new words for a sample patient.
        stretch.get_by_label("How long").fill("1 day")
        stretch.get_by_label("At local time of day (optional)").fill("18:00")
        box = stretch.get_by_label("SMS text, English (sms/stretch.txt)")
        shipped = box.input_value()
        box.press("Control+End")  # the variable picker puts its variable at the cursor
        stretch.get_by_text("Insert a variable").first.click()
        stretch.get_by_role("button", name=re.compile(r"^Insert \{\{ patient.first_name \}\}")).first.click()
        assert box.input_value() == shipped + "{{ patient.first_name }}"
        box.fill(shipped.replace(OLD_WORDS, NEW_WORDS))
        live = stretch.locator(".text-check").first
        expect(live).to_contain_text(NEW_WORDS)
        expect(live).to_contain_text(re.compile(r"GSM-7, \d SMS segments?"))
        expect(live).to_contain_text("Checks pass")
        look_at_widths(page, shots, "sequence editor stretch reworded")
        stretch.screenshot(path=str(shots.folder / "sequence-editor-360px-stretch-step.png"))
        page.get_by_role("button", name="Save draft").click()
        expect(page.get_by_role("status")).to_contain_text("Draft saved. It has no problems")
        expect(page.locator("#step-stretch").get_by_label("At local time of day (optional)")).to_have_value("18:00")
        assert _stretch_due(ana) == before  # a draft changes nothing for patients

        # Preview on Ana: the draft beside the published version, the changes marked.
        page.get_by_role("link", name="Preview on a patient").click()
        page.get_by_label("Patient enrolled in this sequence").select_option(str(plan))
        page.get_by_role("button", name="Show the preview").click()
        row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=re.compile(r"^stretch"))).first
        expect(row).to_contain_text("time and text change")
        expect(row).to_contain_text("18:00")
        expect(row).to_contain_text("09:00")
        expect(row.locator("ins").first).to_be_visible()
        look_at_widths(page, shots, "sequence editor preview on Ana")

        # Publish to current patients, after the dry run's summary.
        page.goto(f"{base}/sequences/{seed.SEQUENCE}/publish")
        summary = page.locator("#dry-run")
        expect(summary).to_contain_text(
            re.compile(
                r"2 pending messages change time, 0 are cancelled, 0 are added; already-sent steps are never sent"
            )
        )
        look_at_widths(page, shots, "sequence editor publish dialog")
        page.get_by_label("Current patients and new enrollments (as above)").check()
        page.get_by_role("button", name="Publish").click()
        expect(page.get_by_role("status")).to_contain_text("Version 1 published: 2 pending messages change time")
        expect(page.get_by_role("rowheader", name="1 (current)")).to_be_visible()
        look_at_widths(page, shots, "sequence editor versions")

        # Ana's timeline has the new times.
        page.goto(f"{base}/patients/{ana}#timeline")
        rows = page.locator("#timeline").get_by_role("row").filter(has_text="stretch")
        expect(rows).to_have_count(2)
        for i in range(2):
            expect(rows.nth(i)).to_contain_text("18:00")
        look_at_widths(page, shots, "sequence editor Ana's timeline")

    after = _stretch_due(ana)
    assert [d.astimezone(ZoneInfo(TZ)).strftime("%H:%M") for d in after] == ["18:00", "18:00"]
    stretch_day = first.date() + timedelta(days=1)
    with fake_providers(monkeypatch) as fake:
        with clock.frozen(datetime.combine(stretch_day, time(17, 55), ZoneInfo(TZ))):
            dispatch.tick()  # everything due before it (and at the old 09:00, if it were still planned)
        with clock.frozen(datetime.combine(stretch_day, time(18, 1), ZoneInfo(TZ))):
            dispatch.tick()
        bodies = [r["body"] for r in fake.sms_requests()]
    assert any(NEW_WORDS in body for body in bodies), bodies
    assert not any(OLD_WORDS in body for body in bodies), bodies
