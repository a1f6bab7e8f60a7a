"""Multi-factor sign-in in the staff app (in-process): the second step, enrollment when required, resets."""

from __future__ import annotations

import re
from datetime import timedelta

from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from engage import clock
from engage.cli.staff import staff as staff_cli
from engage.db import session_scope
from engage.records import factors
from engage.records.models import AuditEvent, Clinic, MfaPolicy, StaffUser
from engage.web.app import create_app
from tests import seed
from tests.web.staff.support import HTML, signed_in


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, html[:300]
    return found.group(1)


def _with_app(email: str = "admin@clinic.example", role: str = "admin", policy: MfaPolicy = MfaPolicy.NONE) -> str:
    """A staff member with an authenticator app confirmed 90 seconds ago; returns its secret."""
    with clock.frozen(clock.utcnow() - timedelta(seconds=90)), session_scope() as session:
        clinic = seed.clinic(session)
        clinic.mfa_required = policy
        staff = seed.staff(session, clinic.id, email, role)
        factor = factors.begin_totp(session, staff)
        assert factor.secret is not None
        factors.confirm_totp(session, staff, factors.totp_code(factor.secret, clock.utcnow()), actor="test")
        return factor.secret


def _password_step(client: TestClient, email: str) -> str:
    page = client.get("/login", headers=HTML)
    answer = client.post(
        "/login", data={"email": email, "password": seed.PASSWORD, "csrf_token": _csrf(page.text)}, headers=HTML
    )
    assert answer.url.path == "/login/verify", answer.text[:300]
    return answer.text


def test_a_password_alone_no_longer_signs_in_someone_with_an_app(db_url: str) -> None:
    secret = _with_app()
    client = TestClient(create_app())
    page = _password_step(client, "admin@clinic.example")
    assert "engage_session" not in client.cookies  # no session yet
    wrong = client.post("/login/verify", data={"code": "000000", "csrf_token": _csrf(page)}, headers=HTML)
    assert wrong.status_code == 401 and "does not match" in wrong.text
    with clock.frozen(clock.utcnow()):
        code = factors.totp_code(secret, clock.utcnow())
        ok = client.post("/login/verify", data={"code": code, "csrf_token": _csrf(wrong.text)}, headers=HTML)
    assert ok.url.path == "/" and "Today" in ok.text
    again = TestClient(create_app())  # the same code, replayed by someone who watched it typed
    page = _password_step(again, "admin@clinic.example")
    with clock.frozen(clock.utcnow()):
        replay = again.post("/login/verify", data={"code": code, "csrf_token": _csrf(page)}, headers=HTML)
    assert replay.status_code == 401


def test_the_second_step_without_a_right_password_goes_back_to_sign_in(db_url: str) -> None:
    _with_app()
    client = TestClient(create_app())
    assert client.get("/login/verify", headers=HTML).url.path == "/login"
    client.cookies.set("engage_mfa_pending", "forged.value.here", path="/login")
    assert client.post("/login/verify", data={"code": "123456"}, headers=HTML).url.path == "/login"


def test_an_admin_without_a_second_factor_is_taken_to_enrollment_and_can_enroll(db_url: str) -> None:
    with session_scope() as session:
        clinic = seed.clinic(session)
        clinic.mfa_required = MfaPolicy.ADMINS
        seed.staff(session, clinic.id, "admin@clinic.example", "admin")
    client, csrf = _signed_in_anywhere("admin@clinic.example")
    page = client.get("/patients", headers=HTML)
    assert page.url.path == "/account/security" and "requires a second factor" in page.text
    setup = client.post("/account/security/totp", data={"csrf_token": csrf}, headers=HTML)
    assert "<svg" in setup.text and 'aria-label="QR code' in setup.text
    secret = re.search(r'<code id="totp-secret">([A-Z2-7 ]+)</code>', setup.text)
    assert secret is not None
    code = factors.totp_code(secret.group(1).replace(" ", ""), clock.utcnow())
    done = client.post("/account/security/totp/confirm", data={"code": code, "csrf_token": csrf}, headers=HTML)
    assert len(re.findall(r"<li><code>[a-z2-9]{5}-[a-z2-9]{5}</code></li>", done.text)) == 10
    assert client.get("/patients", headers=HTML).url.path == "/patients"


def _signed_in_anywhere(email: str) -> tuple[TestClient, str]:
    client = TestClient(create_app())
    page = client.get("/login", headers=HTML)
    answer = client.post(
        "/login", data={"email": email, "password": seed.PASSWORD, "csrf_token": _csrf(page.text)}, headers=HTML
    )
    return client, _csrf(answer.text)


def test_an_admin_resets_a_colleagues_factors_but_not_their_own_without_a_code(db_url: str) -> None:
    _with_app("desk@clinic.example", "front_desk")
    with session_scope() as session:
        clinic_id = session.scalar(select(Clinic.id))
        assert clinic_id is not None
        seed.staff(session, clinic_id, "admin@clinic.example", "admin")
        desk_id = session.scalar(select(StaffUser.id).where(StaffUser.email == "desk@clinic.example"))
        admin_id = session.scalar(select(StaffUser.id).where(StaffUser.email == "admin@clinic.example"))
    client, csrf = signed_in("admin@clinic.example")
    listing = client.get("/settings/security", headers=HTML)
    assert "Reset second factors of desk@clinic.example" in listing.text
    client.post(f"/settings/security/staff/{desk_id}/reset", data={"csrf_token": csrf}, headers=HTML)
    own = client.post(f"/settings/security/staff/{admin_id}/reset", data={"csrf_token": csrf}, headers=HTML)
    assert own.url.path == "/account/security"
    with session_scope() as session:
        assert desk_id is not None and not factors.has_second_factor(session, desk_id)
        audited = session.scalars(select(AuditEvent).where(AuditEvent.action == "staff.mfa_reset")).all()
        assert [(a.actor, a.subject_id) for a in audited] == [("admin@clinic.example", desk_id)]
    desk, desk_csrf = signed_in("desk@clinic.example")  # a password alone again
    assert desk.post("/settings/security/policy", data={"policy": "all", "csrf_token": desk_csrf}).status_code == 403
    client.post("/settings/security/policy", data={"policy": "all", "csrf_token": csrf}, headers=HTML)
    assert desk.get("/", headers=HTML).url.path == "/account/security"


def test_engage_staff_mfa_reset_removes_an_accounts_factors(db_url: str) -> None:
    _with_app()
    with session_scope() as session:
        staff_id = session.scalar(select(StaffUser.id))
    result = CliRunner().invoke(staff_cli, ["mfa-reset", str(staff_id)])
    assert result.exit_code == 0 and "second factors removed" in result.output
    with session_scope() as session:
        assert staff_id is not None and not factors.has_second_factor(session, staff_id)
        assert session.scalar(select(AuditEvent.actor).where(AuditEvent.action == "staff.mfa_reset")) == "cli"
    missing = CliRunner().invoke(staff_cli, ["mfa-reset", "999999"])
    assert missing.exit_code == 2 and "no staff account" in missing.output
