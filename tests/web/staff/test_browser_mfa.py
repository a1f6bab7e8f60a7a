"""Multi-factor sign-in in a real browser (headless Chromium, a real ``engage serve`` on PostgreSQL).

An admin whose clinic requires a second factor signs in with a password, is taken to enrollment,
sets up an authenticator app from the QR code's key and signs in again with a password and a
code; then adds a passkey (Chromium's virtual authenticator, through the DevTools protocol) and
signs in with a password and the passkey, and with the passkey alone. Every new page is checked
with axe-core and photographed at 1280 and 360 px.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from engage import clock
from engage.db import session_scope
from engage.records import factors
from engage.records.models import MfaPolicy
from tests import seed
from tests.browser import Screenshots, assert_accessible, serve, settle

pytestmark = pytest.mark.browser
EMAIL = "admin@backinmotion.example"


@pytest.fixture(scope="module")
def shots() -> Screenshots:
    shots = Screenshots()
    print(f"\nscreenshots of the sign-in security pages: {shots.folder}")
    return shots


def _visit(page: Page, shots: Screenshots, name: str) -> None:
    """A new page: accessible, and photographed wide and narrow."""
    settle(page)
    assert_accessible(page)
    shots.take(page, f"mfa {name} 1280")
    page.set_viewport_size({"width": 360, "height": 800})
    assert_accessible(page)
    shots.take(page, f"mfa {name} 360")
    page.set_viewport_size({"width": 1280, "height": 900})


def _virtual_authenticator(page: Page) -> tuple[Any, str]:
    """A platform authenticator that holds passkeys and verifies its user (a fingerprint, say) without asking."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, str(added["authenticatorId"])


def _password(page: Page, base: str) -> None:
    page.goto(base + "/login")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password").fill(seed.PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def _sign_out(page: Page) -> None:
    page.get_by_role("button", name=re.compile("^Sign out")).click()
    expect(page).to_have_url(re.compile(r"/login"))


def test_an_admin_enrolls_an_app_and_a_passkey_and_signs_in_with_each(
    pg_url: str, browser: Browser, shots: Screenshots
) -> None:
    with session_scope() as session:
        clinic = seed.clinic(session)
        clinic.mfa_required = MfaPolicy.ADMINS
        seed.staff(session, clinic.id, EMAIL, "admin")
    with serve(pg_url, host="localhost") as base:
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.set_default_timeout(20_000)
        cdp, authenticator = _virtual_authenticator(page)
        page.goto(base + "/login")
        _visit(page, shots, "sign in")

        # The password is right, but the clinic requires a second factor: every page leads to enrollment.
        _password(page, base)
        expect(page).to_have_url(re.compile(r"/account/security$"))
        expect(page.get_by_role("alert")).to_contain_text("requires a second factor")
        page.goto(base + "/patients")
        expect(page).to_have_url(re.compile(r"/account/security$"))
        _visit(page, shots, "enrollment")

        # An authenticator app: the key under the QR code gives the codes.
        page.get_by_role("button", name="Set up an authenticator app").click()
        expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
        _visit(page, shots, "authenticator app")
        secret = page.locator("#totp-secret").inner_text().replace(" ", "")
        page.get_by_label("Code from the app").fill("000000")
        page.get_by_role("button", name="Confirm").click()
        expect(page.locator("#code-error")).to_contain_text("does not match")
        page.get_by_label("Code from the app").fill(factors.totp_code(secret, clock.utcnow()))
        page.get_by_role("button", name="Confirm").click()
        expect(page.get_by_role("list", name="Recovery codes").get_by_role("listitem")).to_have_count(10)
        _visit(page, shots, "recovery codes")
        page.get_by_role("link", name="Go to Today").click()
        expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()

        # Password and code. (The code of the next 30 s: the one used to enroll is spent.)
        _sign_out(page)
        _password(page, base)
        expect(page).to_have_url(re.compile(r"/login/verify"))
        _visit(page, shots, "second step")
        page.get_by_label("Code from your authenticator app, or a recovery code").fill(
            factors.totp_code(secret, clock.utcnow() + timedelta(seconds=30))
        )
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()

        # A passkey, made by the virtual authenticator.
        page.get_by_role("link", name="Security").click()
        page.get_by_label("Name for a new passkey").fill("Front desk computer")
        page.get_by_role("button", name="Add a passkey").click()
        expect(page.get_by_text("Front desk computer, added")).to_be_visible()
        credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
        assert len(credentials["credentials"]) == 1 and credentials["credentials"][0]["isResidentCredential"]
        _visit(page, shots, "security with a passkey")

        # Password and passkey.
        _sign_out(page)
        _password(page, base)
        expect(page).to_have_url(re.compile(r"/login/verify"))
        page.get_by_role("button", name="Use my passkey").click()
        expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()

        # The passkey alone (it verified its user, so it is two factors by itself).
        _sign_out(page)
        page.get_by_role("button", name="Use a passkey instead").click()
        expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()

        page.goto(base + "/settings/security")
        _visit(page, shots, "settings security")
