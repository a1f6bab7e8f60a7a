"""Every staff page, and the API's docs, at a phone's width (360 px) and a desk's (1280 px: the same document,
resized) in a real browser against ``engage serve`` on PostgreSQL: axe-core finds no serious or critical violation
(on the patient page also with every folded section open), nothing is wider than the screen, and a screenshot of
each is kept (``screenshots/``)."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from engage.clock import utcnow
from engage.conversation.inbound import InboundSms, receive_sms
from engage.conversation.measures import record_score
from engage.db import session_scope
from engage.integrations.endpoints import create_endpoint
from engage.records.patients import add_patient
from engage.records.plans import create_plan
from engage.records.practitioners import add_practitioner
from engage.schedule.enrollments import enroll
from engage.schedule.reconcile import reconcile_patient
from tests import seed
from tests.browser import WIDTHS, Screenshots, look_at_widths, serve

pytestmark = pytest.mark.browser
TZ = "America/New_York"


@pytest.fixture(scope="module")
def shots() -> Screenshots:
    shots = Screenshots()
    print(f"\nscreenshots of every staff page: {shots.folder}")
    return shots


def _seed() -> dict[str, int]:
    today = utcnow().astimezone(ZoneInfo(TZ)).date()
    with session_scope() as session:
        clinic = seed.clinic(session)
        seed.staff(session, clinic.id, "admin@backinmotion.example", "admin")
        chen = add_practitioner(session, clinic.id, name="Dr. Maya Chen", external_id="DR-1", actor="test")
        ana = add_patient(
            session,
            clinic_id=clinic.id,
            first_name="Ana",
            last_name="Ruiz",
            phone="+14155550123",
            email="ana@example.com",
            date_of_birth="1975-06-01",
            actor="test",
        ).patient
        plan = create_plan(
            session,
            patient_id=ana.id,
            condition="sciatica",
            modality="dry needling",
            first=f"{(today - timedelta(days=14)).isoformat()}T09:00",
            sessions=6,
            every=timedelta(days=7),
            allow_past=True,
            practitioner_id=chen.id,
            actor="test",
        )
        enroll(session, ana.id, plan.id, seed.SEQUENCE, enrolled_by="test")
        for days, score in ((13, 7), (6, 5), (1, 4)):
            record_score(session, ana.id, score, actor="test", at=utcnow() - timedelta(days=days))
        receive_sms(
            session,
            InboundSms("SMa", "+14155550123", "+14155550100", "Can I bring my own towel?"),
            replan=reconcile_patient,
        )
        endpoint = create_endpoint(session, clinic.id, "https://hooks.example.org/engage", "EHR", actor="test")
        session.flush()
        upcoming = [a for a in plan.appointments if a.start_at > utcnow()]
        return {
            "ana": ana.id,
            "plan": plan.id,
            "visit": upcoming[0].id,
            "chen": chen.id,
            "endpoint": endpoint.id,
        }


def _pages(ids: dict[str, int]) -> list[tuple[str, str]]:
    """(name, path) of every staff page, as the admin sees it (every button shown)."""
    ana = ids["ana"]
    return [
        ("today", "/"),
        ("today for one practitioner", f"/?practitioner={ids['chen']}"),
        ("patients", "/patients"),
        ("patient search", "/patients?q=0123"),
        ("new patient", "/patients/new"),
        ("patient page", f"/patients/{ana}"),
        ("patient page for one practitioner", f"/patients/{ana}?practitioner={ids['chen']}"),
        ("edit patient", f"/patients/{ana}/edit"),
        ("enroll preview", f"/patients/{ana}/plans/{ids['plan']}/enroll?sequence={seed.SEQUENCE}"),
        ("cancel a visit", f"/appointments/{ids['visit']}/cancel"),
        ("no-show", f"/appointments/{ids['visit']}/no-show"),
        ("messages", "/messages"),
        ("messages for one practitioner", f"/messages?practitioner={ids['chen']}"),
        ("inbox", "/inbox"),
        ("thread", f"/inbox/patients/{ana}"),
        ("sequences", "/sequences"),
        ("outcomes", "/outcomes"),
        ("import", "/import"),
        ("settings", "/settings"),
        ("security", "/settings/security"),
        ("webhook endpoint", f"/settings/webhooks/{ids['endpoint']}"),
        ("not found", "/patients/abc"),
        ("api docs", "/api/docs"),
    ]


def test_every_staff_page_is_accessible_and_fits(pg_url: str, browser: Browser, shots: Screenshots) -> None:
    ids = _seed()
    with serve(pg_url) as base:
        page = browser.new_context(viewport={"width": 360, "height": 800}).new_page()
        page.goto(base + "/login")
        look_at_widths(page, shots, "every page login")
        page.get_by_label("Email address").fill("admin@backinmotion.example")
        page.get_by_label("Password").fill(seed.PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()
        for name, path in _pages(ids):
            page.goto(base + path)
            if name == "api docs":
                expect(page.get_by_role("heading", name=re.compile("engage API"))).to_be_visible(timeout=20_000)
            look_at_widths(page, shots, f"every page {name}", fits=name != "api docs")
            if name == "api docs":  # an operation opened: its parameters, examples and code blocks
                page.locator(".opblock-summary-control").first.click()
                expect(page.locator(".opblock-body").first).to_be_visible()
                look_at_widths(page, shots, f"every page {name} with an operation open", fits=False)
            if name == "patient page":
                page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
                look_at_widths(page, shots, f"every page {name} unfolded")

        # The one-time secrets wrap inside the screen: a new API token and a new webhook endpoint's secret.
        page.goto(base + "/settings")
        page.get_by_label("Label (what uses it)").fill("EHR sync")
        page.get_by_role("button", name="Create token").click()
        _secret_fits(page, page.get_by_role("status").locator("code"))
        page.get_by_label("URL").fill("https://pms.example.org/engage-events")
        page.get_by_role("button", name="Add endpoint").click()
        _secret_fits(page, page.locator("#webhook-secret"))
        look_at_widths(page, shots, "every page settings with a new secret")


def _secret_fits(page: Page, secret: Locator) -> None:
    expect(secret).to_be_visible()
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        box = secret.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (width, box)
    page.set_viewport_size({"width": 360, "height": 800})
