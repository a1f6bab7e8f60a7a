"""Input that once answered 500: NUL characters, ids and page numbers too large for the database, odd digits.

Each is answered with a clear 4xx (or, for a NUL in a body, taken without the NUL), never a server error.
"""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from engage.db import session_scope
from engage.records import api_tokens
from engage.records.models import Patient
from engage.web.app import create_app
from tests import seed
from tests.web.staff.support import HTML, signed_in

ADMIN = "admin@clinic.example"


@pytest.fixture
def world(pg_url: str) -> str:
    """A clinic with an admin and a patient on PostgreSQL (which, unlike SQLite, refuses NUL and big ints)."""
    with session_scope() as session:
        clinic = seed.clinic(session)
        seed.staff(session, clinic.id, ADMIN, "admin")
        seed.patient(session, clinic.id, email="ana@example.com")
        _, token = api_tokens.create_token(session, staff_email=ADMIN, label="tests", actor="test")
    return token


def api(token: str) -> TestClient:
    return TestClient(create_app(), headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/patients?q=%00",
        "/api/v1/patients?q=ana%00",
        "/patients?q=%00",
        "/api/v1/patients/1%00",
    ],
)
def test_a_nul_in_the_url_is_refused_with_400(world: str, path: str) -> None:
    answer = api(world).get(path)

    assert answer.status_code == 400
    assert "NUL" in answer.text


def test_a_name_with_a_nul_in_json_is_stored_without_it(world: str) -> None:
    answer = api(world).post(
        "/api/v1/patients",
        json={"first_name": "Bo\u0000", "last_name": "Lee", "phone": "+14155550124"},
    )

    assert answer.status_code == 201, answer.text
    assert answer.json()["first_name"] == "Bo"
    with session_scope() as session:
        assert session.scalars(select(Patient.first_name).where(Patient.last_name == "Lee")).one() == "Bo"


def test_an_escaped_backslash_before_u0000_is_text_and_kept(world: str) -> None:
    body = b'{"first_name": "Bo\\\\u0000", "last_name": "Lee", "phone": "+14155550124"}'
    answer = api(world).post("/api/v1/patients", content=body, headers={"content-type": "application/json"})

    assert answer.status_code == 201, answer.text
    assert answer.json()["first_name"] == "Bo\\u0000"


def test_a_name_with_a_nul_in_a_staff_form_is_stored_without_it(world: str) -> None:
    client, csrf = signed_in(ADMIN)
    data = {"first_name": "Eve\x00", "last_name": "X", "phone": "+14155550111", "csrf_token": csrf}
    answer = client.post("/patients/new", data=data, headers=HTML)

    assert answer.status_code == 200, answer.text[:300]
    with session_scope() as session:
        assert session.scalars(select(Patient.first_name).where(Patient.last_name == "X")).one() == "Eve"


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("value", ["1" * 25, "2147483648", "0", "-5", "²"])
def test_a_message_cursor_beyond_any_id_is_refused_with_422(world: str, value: str) -> None:
    answer = api(world).get("/api/v1/messages", params={"cursor": _cursor(f"id:{value}")})

    assert answer.status_code == 422
    assert "cursor" in answer.text


def test_the_largest_id_is_a_fine_cursor(world: str) -> None:
    answer = api(world).get("/api/v1/messages", params={"cursor": _cursor("id:2147483647")})

    assert answer.status_code == 200


@pytest.mark.parametrize("path", ["/patients", "/messages"])
def test_a_page_number_past_any_offset_shows_an_empty_page(world: str, path: str) -> None:
    client, _ = signed_in(ADMIN)

    answer = client.get(f"{path}?page=99999999999999999999", headers=HTML)

    assert answer.status_code == 200
    assert "Ruiz" not in answer.text


@pytest.mark.parametrize("path", ["/api/v1/patients/2147483648", "/api/v1/patients/" + "9" * 25])
def test_an_id_past_the_column_range_is_a_clear_4xx(world: str, path: str) -> None:
    answer = api(world).get(path)

    assert answer.status_code in (404, 422), answer.text


def test_a_staff_page_for_an_id_past_the_column_range_is_a_clear_4xx(world: str) -> None:
    client, _ = signed_in(ADMIN)

    answer = client.get("/patients/" + "9" * 25, headers=HTML)

    assert 400 <= answer.status_code < 500


def test_a_csrf_token_in_other_letters_is_refused_not_a_server_error(world: str) -> None:
    # hmac.compare_digest raises TypeError for a str that is not ASCII: found by test_no_server_errors.
    anonymous = TestClient(create_app())
    assert anonymous.post("/login", data={"email": ADMIN, "password": "x", "csrf_token": "²"}).status_code == 400
    client, _ = signed_in(ADMIN)
    data = {"first_name": "Eve", "last_name": "X", "phone": "+14155550111", "csrf_token": "²"}
    assert client.post("/patients/new", data=data, headers=HTML).status_code == 403
