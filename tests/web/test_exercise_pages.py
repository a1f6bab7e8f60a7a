"""The patient's exercises page ``/x/{token}``: the practitioner's picks, in the patient's language."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from engage.content.exercises import set_plan_exercises
from engage.content.links import exercises_url, make_token
from engage.db import session_scope
from engage.records.models import Patient
from engage.web.patient_pages import dialled
from tests.fixtures.webhooks.support import CLINIC_PHONE, PUBLIC_URL, client, make_world

pytestmark = pytest.mark.usefixtures("db_url")


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    return client(monkeypatch)


def test_the_page_shows_the_picked_exercises_with_sides_and_when_to_stop(http: TestClient) -> None:
    world = make_world()
    with session_scope() as session:
        set_plan_exercises(session, world.plan_id, ["figure-four", "gentle-walk"], actor="test")
    page = http.get(exercises_url(world.plan_id).removeprefix(PUBLIC_URL))
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    html = page.text
    assert '<html lang="en">' in html and "Lying figure-four stretch" in html and "Gentle walk" in html
    assert "Cross your right ankle over your left knee." in html and "Then switch" in html
    assert "Hold 30 seconds. Do it 3 times on each side." in html
    assert "pain, tingling or numbness spreads down your leg" in html
    assert "Knee" not in html  # only the picked ones
    assert f'href="tel:{CLINIC_PHONE}">{dialled(CLINIC_PHONE)}</a>' in html  # shown as people dial it


def test_the_page_is_in_spanish_for_a_spanish_speaking_patient(http: TestClient) -> None:
    world = make_world()
    with session_scope() as session:
        session.execute(update(Patient).where(Patient.id == world.patient_id).values(locale="es-US"))
        set_plan_exercises(session, world.plan_id, ["figure-four"], actor="test")
    html = http.get(exercises_url(world.plan_id).removeprefix(PUBLIC_URL)).text
    assert '<html lang="es">' in html and "Sus ejercicios" in html
    assert "Cruce el tobillo derecho sobre la rodilla izquierda." in html
    assert "Mantenga 30 segundos. Hágalo 3 veces por lado." in html and "le bajan por la pierna" in html


def test_with_none_picked_the_page_says_do_the_stretches_your_practitioner_showed_you(http: TestClient) -> None:
    world = make_world()
    html = http.get(exercises_url(world.plan_id).removeprefix(PUBLIC_URL)).text
    assert "Do the stretches your practitioner showed you." in html


def test_a_forged_or_wrong_purpose_token_gets_the_invalid_page(http: TestClient) -> None:
    world = make_world()
    forged = http.get("/x/" + make_token("unsubscribe", {"plan_id": world.plan_id}))
    assert forged.status_code == 404 and "figure" not in forged.text
    assert http.get("/x/preview").status_code == 404
