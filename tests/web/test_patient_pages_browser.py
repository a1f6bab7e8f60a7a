"""A patient's pages in a real browser (headless Chromium) against a real ``engage serve`` on PostgreSQL.

Every page a patient can reach from a message (/u and what it leads to, /r and what it leads
to, the closed and invalid-link pages) in English and Spanish, walked on a 360 px phone and each
page also laid out on a 1280 px screen: checked with axe-core (no serious or critical violations) and
photographed into the
folder the test prints.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Browser, Page, expect

from engage.clock import utcnow
from engage.content.links import reassessment_url, unsubscribe_url
from engage.db import session_scope
from engage.records.models import Channel, MessageStatus, Patient
from tests.browser import SCREENSHOTS, Screenshots, look_at_widths, serve
from tests.fixtures.webhooks.support import PUBLIC_URL, add_message, make_world

pytestmark = pytest.mark.browser

WORDS = {
    "en": {
        "send": "Yes, send my answer",
        "again": "Answer again",
        "unsubscribe": "Unsubscribe",
        "choose": "How is your pain today?",
        "check": "Is this right?",
        "thanks": "Thank you",
        "done": "You are unsubscribed",
        "safety": "If your pain gets much worse",
        "closed": "This question is closed",
        "invalid": "This link is not valid",
    },
    "es": {
        "send": "Sí, enviar mi respuesta",
        "again": "Responda de nuevo",
        "unsubscribe": "Darme de baja",
        "choose": "¿Cómo está su dolor hoy?",
        "check": "¿Es correcto?",
        "thanks": "Gracias",
        "done": "Se ha dado de baja",
        "safety": "Si el dolor empeora mucho",
        "closed": "Esta pregunta está cerrada",
        "invalid": "Este enlace no es válido",
    },
}


@pytest.fixture(scope="module")
def shots() -> Screenshots:
    shots = Screenshots(SCREENSHOTS / "patient-pages")
    print(f"\nscreenshots of the patient pages: {shots.folder}")
    return shots


def _local(url: str, base: str) -> str:
    return base + url.removeprefix(PUBLIC_URL)


def _score_rows(page: Page) -> list[float]:
    """The distinct vertical positions of the 0-10 buttons (one per row)."""
    tops = page.locator(".scores button").evaluate_all("bs => bs.map(b => Math.round(b.getBoundingClientRect().top))")
    return sorted(set(tops))


@pytest.mark.parametrize("lang", ["en", "es"])
def test_a_patient_answers_the_pain_question_and_unsubscribes_in_their_language(
    pg_url: str,
    browser: Browser,
    shots: Screenshots,
    lang: str,
) -> None:
    words = WORDS[lang]
    world = make_world()
    with session_scope() as session:
        session.get_one(Patient, world.patient_id).locale = lang
    prompt = add_message(world, channel=Channel.EMAIL, sent_at=utcnow() - timedelta(hours=2))
    unsent = add_message(
        world, channel=Channel.EMAIL, status=MessageStatus.SCHEDULED, due_at=utcnow() + timedelta(days=2)
    )
    page = browser.new_context(viewport={"width": 360, "height": 800}).new_page()
    page.set_default_timeout(20_000)

    with serve(pg_url) as base:
        # The pain question: eleven large buttons, two rows even on a 360 px phone.
        page.goto(_local(reassessment_url(prompt, None), base))
        expect(page.locator("html")).to_have_attribute("lang", lang)
        expect(page.get_by_role("heading", name=words["choose"])).to_be_visible()
        assert len(_score_rows(page)) == 2
        assert page.locator(".scores button").first.bounding_box()["height"] >= 48  # type: ignore[index]
        expect(page.locator('a[href="tel:+14155550199"]')).to_have_text("(415) 555-0199")
        look_at_widths(page, shots, f"{lang}-r-choose")

        page.get_by_role("button", name="7", exact=True).click()
        expect(page.get_by_role("heading", name=words["check"])).to_be_visible()
        look_at_widths(page, shots, f"{lang}-r-confirm")

        page.get_by_role("button", name=words["send"]).click()
        expect(page.get_by_role("heading", name=words["thanks"])).to_be_visible()
        expect(page.get_by_text(words["safety"])).to_have_count(0)
        look_at_widths(page, shots, f"{lang}-r-thanks")

        page.get_by_role("link", name=words["again"]).click()
        page.get_by_role("button", name="9", exact=True).click()
        page.get_by_role("button", name=words["send"]).click()
        expect(page.get_by_text(words["safety"])).to_be_visible()
        expect(page.get_by_text("911")).to_be_visible()
        look_at_widths(page, shots, f"{lang}-r-thanks-high-score")

        page.goto(_local(reassessment_url(unsent, 4), base))
        expect(page.get_by_role("heading", name=words["closed"])).to_be_visible()
        look_at_widths(page, shots, f"{lang}-r-closed")

        # Unsubscribing from texts: one button, then how to opt back in.
        page.goto(_local(unsubscribe_url(world.patient_id, Channel.SMS), base))
        look_at_widths(page, shots, f"{lang}-u-confirm")
        page.get_by_role("button", name=words["unsubscribe"]).click()
        expect(page.get_by_role("heading", name=words["done"])).to_be_visible()
        expect(page.get_by_text("START")).to_be_visible()
        look_at_widths(page, shots, f"{lang}-u-unsubscribed")

        if lang == "en":  # the invalid-link page knows no patient, so it is always English
            page.goto(base + "/u/not-a-real-token")
            expect(page.get_by_role("heading", name=words["invalid"])).to_be_visible()
            look_at_widths(page, shots, "invalid-link")
