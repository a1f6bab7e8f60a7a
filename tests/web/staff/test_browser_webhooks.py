"""An admin registers a webhook endpoint in a real browser (headless Chromium) against a real ``engage serve``.

Every page visited is checked with axe-core (no serious or critical violations) and photographed
into the ``webhooks`` screenshots folder, which the test prints. The endpoint is a real HTTP
receiver; the event it gets is checked against the secret the page showed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, select

from engage.config import get_settings
from engage.conversation.consent import record_consent
from engage.db import session_scope
from engage.integrations import deliver
from engage.records.models import Channel, ConsentState
from engage.records.outgoing_webhooks import WebhookEndpoint
from tests import seed
from tests.browser import SCREENSHOTS, Screenshots, assert_accessible, serve, settle
from tests.fakes.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.browser
ADMIN = "admin@backinmotion.example"


@pytest.fixture(scope="module")
def shots() -> Screenshots:
    shots = Screenshots(SCREENSHOTS / "webhooks")
    print(f"\nscreenshots of the webhook settings: {shots.folder}")
    return shots


def _visit(page: Page, shots: Screenshots, name: str) -> None:
    settle(page)
    assert_accessible(page)
    shots.take(page, name)


def _endpoints() -> list[tuple[str, str]]:
    with session_scope() as session:
        return [(e.url, e.secret) for e in session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.active))]


def test_an_admin_adds_a_webhook_endpoint_sees_the_secret_once_and_the_event_it_got(
    pg_url: str,
    browser: Browser,
    shots: Screenshots,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENGAGE_WEBHOOK_ALLOW_LOCAL", "1")  # the receiver is on this machine (this process posts)
    get_settings.cache_clear()
    with session_scope() as session:
        clinic = seed.clinic(session, name="Back in Motion")
        seed.staff(session, clinic.id, ADMIN, "admin")
        ben_id = seed.patient(session, clinic.id, "Ben", "Okafor", phone="+14155550177", email="ben@example.com").id
    with WebhookReceiver() as receiver, serve(pg_url, env={"ENGAGE_WEBHOOK_ALLOW_LOCAL": "1"}) as base:
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.set_default_timeout(20_000)
        page.goto(base + "/settings")
        page.get_by_label("Email address").fill(ADMIN)
        page.get_by_label("Password").fill(seed.PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()
        expect(page.get_by_text("No webhook endpoints.")).to_be_visible()

        # Plain http to another host: refused beside the field, nothing saved.
        page.get_by_label("URL", exact=True).fill("http://pms.example.org/engage-events")
        page.get_by_label("Label (what receives it)").fill("PMS sync")
        page.get_by_role("button", name="Add endpoint").click()
        expect(page.locator("#we-url")).to_have_text(
            "a webhook URL must use https (plain http only to this machine, in development: ENGAGE_WEBHOOK_ALLOW_LOCAL)"
        )
        expect(page.get_by_label("URL", exact=True)).to_have_attribute("aria-invalid", "true")
        _visit(page, shots, "settings webhook refused")
        assert _endpoints() == []

        # The receiver on this machine: added, its secret shown once with how to verify it.
        page.get_by_label("URL", exact=True).fill(receiver.url)
        page.get_by_role("button", name="Add endpoint").click()
        status = page.get_by_role("status")
        expect(status).to_contain_text("shown only once")
        expect(status).to_contain_text("drop repeats by webhook-id")
        [(url, secret)] = _endpoints()
        assert url == receiver.url
        expect(page.locator("#webhook-secret")).to_have_text(secret)
        expect(page.get_by_role("row").filter(has_text="PMS sync")).to_contain_text("none yet")
        _visit(page, shots, "settings webhook added with its secret")
        page.goto(base + "/settings")
        expect(page.get_by_role("row").filter(has_text="PMS sync")).to_contain_text(receiver.url)
        assert secret not in page.content()

        # Ben opts out of SMS: the receiver gets a consent.changed event signed with that secret.
        with session_scope() as session:
            record_consent(session, ben_id, Channel.SMS, ConsentState.OPTED_OUT, "staff")
        assert deliver.deliver_due()["delivered"] == 1
        [post] = receiver.posts()
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signed = f"{post.headers['webhook-id']}.{post.headers['webhook-timestamp']}.".encode() + post.body
        assert (
            post.headers["webhook-signature"]
            == "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        )

        page.reload()
        page.get_by_role("link", name="Recent events of PMS sync").click()
        expect(page.get_by_role("heading", name="Webhook endpoint PMS sync")).to_be_visible()
        row = page.get_by_role("row").filter(has_text="consent.changed")
        expect(row).to_contain_text("delivered")
        expect(row).to_contain_text("HTTP 200")
        expect(row).to_contain_text(post.headers["webhook-id"])
        _visit(page, shots, "webhook endpoint events")

        page.get_by_role("button", name="Remove this endpoint").click()
        expect(page.get_by_role("status")).to_contain_text("Webhook endpoint PMS sync removed")
        expect(page.get_by_text("No webhook endpoints.")).to_be_visible()
        assert re.search(r"/settings#webhooks$", page.url)
        with session_scope() as session:
            assert session.scalar(select(func.count()).where(WebhookEndpoint.active)) == 0
