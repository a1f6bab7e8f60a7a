"""Signing in and what each role may do: CSRF on every form, throttled guessing, 403 and hidden actions."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from engage.db import session_scope
from engage.records.models import AuditEvent, Patient, StaffSession
from engage.web.app import create_app
from tests import seed
from tests.web.staff.support import HTML, signed_in


def _clinic_with(*staff: tuple[str, str]) -> int:
    with session_scope() as session:
        clinic = seed.clinic(session)
        for email, role in staff:
            seed.staff(session, clinic.id, email, role)
        return seed.patient(session, clinic.id, email="ana@example.com").id


def test_pages_ask_to_sign_in_and_come_back_after(db_url: str) -> None:
    _clinic_with(("desk@clinic.example", "front_desk"))
    client = TestClient(create_app())
    answer = client.get("/patients?q=ana", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=%2Fpatients%3Fq%3Dana"
    assert client.get("/patients", headers={"hx-request": "true"}).status_code == 401


def test_session_cookie_is_httponly_lax_and_holds_only_a_random_id(db_url: str) -> None:
    _clinic_with(("desk@clinic.example", "front_desk"))
    client = TestClient(create_app())
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)  # type: ignore[union-attr]
    answer = client.post(
        "/login",
        data={"email": "desk@clinic.example", "password": seed.PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    cookie = answer.headers["set-cookie"]
    assert "engage_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    value = cookie.split("engage_session=")[1].split(";")[0]
    with session_scope() as session:
        assert session.scalar(select(func.count()).where(StaffSession.token_hash == value)) == 0
        assert session.scalar(select(func.count()).select_from(StaffSession)) == 1


def test_a_form_without_the_sessions_csrf_token_is_refused(db_url: str) -> None:
    _clinic_with(("desk@clinic.example", "front_desk"))
    client, csrf = signed_in("desk@clinic.example")
    data = {"first_name": "Eve", "last_name": "X", "phone": "+14155550111"}
    assert client.post("/patients/new", data=data, headers=HTML).status_code == 403
    assert client.post("/patients/new", data={**data, "csrf_token": "forged"}, headers=HTML).status_code == 403
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 1
    assert client.post("/patients/new", data={**data, "csrf_token": csrf}, headers=HTML).status_code == 200


def test_guessing_is_throttled_with_one_answer_for_every_address(db_url: str) -> None:
    _clinic_with(("desk@clinic.example", "front_desk"))
    client = TestClient(create_app())

    def attempt(email: str, password: str) -> tuple[int, str]:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)  # type: ignore[union-attr]
        answer = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
        message = re.search(r'role="alert"[^>]*>([^<]+)<', answer.text)
        return answer.status_code, message.group(1) if message else ""

    assert attempt("desk@clinic.example", "wrong guess 1") == attempt("nobody@clinic.example", "wrong guess 2")
    for n in range(3):
        attempt("desk@clinic.example", f"wrong guess {n + 3}")
    status, message = attempt("desk@clinic.example", seed.PASSWORD)
    assert status == 429 and "Wait 15 minutes" in message


def test_practitioner_reads_but_cannot_change_patients_and_sees_no_such_buttons(db_url: str) -> None:
    patient_id = _clinic_with(("doc@clinic.example", "practitioner"))
    client, csrf = signed_in("doc@clinic.example")
    page = client.get(f"/patients/{patient_id}")
    assert page.status_code == 200 and "Ana Ruiz" in page.text
    for hidden in ("Edit contact details", "Record consent", "Create plan", "Settings"):
        assert hidden not in page.text
    assert "New patient" not in client.get("/patients").text
    consent = {"csrf_token": csrf, "channel": "sms", "state": "opted_out", "reason": "x"}
    refused = client.post(f"/patients/{patient_id}/consent", data=consent, headers=HTML)
    assert refused.status_code == 403
    assert client.get("/settings", headers=HTML).status_code == 403
    with session_scope() as session:
        assert session.scalar(select(func.count()).where(AuditEvent.action.like("consent.%"))) == 0


def test_staff_changes_are_audited_and_shown_on_the_patients_page(db_url: str) -> None:
    patient_id = _clinic_with(("desk@clinic.example", "front_desk"))
    client, csrf = signed_in("desk@clinic.example")
    client.post(
        f"/patients/{patient_id}/consent",
        data={"csrf_token": csrf, "channel": "sms", "state": "opted_out", "reason": "asked at the desk"},
    )
    page = client.get(f"/patients/{patient_id}").text
    history = page.split('id="history-h"')[1]
    assert "desk@clinic.example" in history and "consent.sms_opt_out" in history
    assert "asked at the desk" in page.split('id="consent-h"')[1]
