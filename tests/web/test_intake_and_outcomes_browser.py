"""In headless Chromium against a real ``engage serve`` on PostgreSQL: a patient gives a baseline on the intake
page in English and in Spanish, and a practitioner reads the Outcomes page; axe-clean at 360 and 1280 px, no
sideways scrolling, screenshots kept."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from engage.content.links import intake_url
from engage.db import session_scope
from engage.records.models import Measure, Outcome, Patient
from tests import seed
from tests.browser import SCREENSHOTS, Screenshots, assert_accessible, serve
from tests.fixtures.webhooks.support import PUBLIC_URL, add_patient_world
from tests.outcomes import world as fixture

pytestmark = pytest.mark.browser

WORDS = {
    "en": ("Before your first visit", "Activity 1", "How well can you do it? (0–10)", "Send my answers", "Thank you"),
    "es": (
        "Antes de su primera visita",
        "Actividad 1",
        "¿Qué tan bien puede hacerla? (0–10)",
        "Enviar mis respuestas",
        "Gracias",
    ),
}


def _look(page: Page, shots: Screenshots, name: str, width: int) -> None:
    page.wait_for_load_state("load")
    assert_accessible(page)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width, f"{name} scrolls sideways"
    shots.take(page, f"{name}-{width}px")


def test_patients_give_a_baseline_and_the_practitioner_reads_the_outcomes(pg_url: str, browser: Browser) -> None:
    shots = Screenshots(SCREENSHOTS / "outcomes")
    print(f"\nscreenshots of the intake and Outcomes pages: {shots.folder}")
    with session_scope() as session:
        world = fixture.build(session)
        seed.staff(session, world.clinic_id, "doc@clinic.example", role="practitioner")
        patients = {}
        for n, lang in enumerate(("en", "es")):
            made = add_patient_world(session, world.clinic_id, phone=f"+1415555019{n}", email=None)
            session.get_one(Patient, made.patient_id).locale = lang
            patients[lang] = made.patient_id

    with serve(pg_url) as base:
        for width in (360, 1280):
            page = browser.new_context(viewport={"width": width, "height": 800}).new_page()
            page.set_default_timeout(20_000)
            for lang, (heading, activity, rating, send, thanks) in WORDS.items():
                page.goto(base + intake_url(patients[lang]).removeprefix(PUBLIC_URL))
                expect(page.locator("html")).to_have_attribute("lang", lang)
                expect(page.get_by_role("heading", name=heading)).to_be_visible()
                _look(page, shots, f"{lang}-intake", width)
                page.get_by_role("button", name=send).click()  # nothing chosen: told what to fix
                expect(page.get_by_role("alert")).to_be_visible()
                _look(page, shots, f"{lang}-intake-fix", width)
                page.get_by_label("6", exact=True).check()
                page.get_by_label(activity, exact=True).fill("Sitting" if lang == "en" else "Estar sentado")
                page.get_by_label(rating).first.select_option("3")
                page.get_by_role("button", name=send).click()
                expect(page.get_by_role("heading", name=thanks)).to_be_visible()
                _look(page, shots, f"{lang}-intake-thanks", width)

            page.goto(base + "/login")
            page.get_by_label("Email address").fill("doc@clinic.example")
            page.get_by_label("Password").fill(seed.PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("link", name="Outcomes").click()
            expect(page.get_by_role("heading", name="Outcomes", exact=True)).to_be_visible()
            expect(page.locator("#responder-rate")).to_contain_text(re.compile(r"60 %,\s+6 of 10 .*31 % to 83 %", re.S))
            _look(page, shots, "outcomes", width)
            page.get_by_label("Practitioner", exact=True).select_option(label="Dr. Diaz")
            page.get_by_role("button", name="Show").click()
            expect(page.locator("#responder-rate")).to_contain_text("50 %")
            _look(page, shots, "outcomes-one-practitioner", width)
            page.context.close()

    with session_scope() as session:
        for lang, patient_id in patients.items():
            rows = session.execute(
                select(Outcome.measure, Outcome.score).where(Outcome.patient_id == patient_id).order_by(Outcome.id)
            ).all()
            assert [tuple(r) for r in rows] == [(Measure.NPRS, 6), (Measure.PSFS, 3)] * 2, lang  # once per width
