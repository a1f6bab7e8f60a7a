"""Picking a plan's exercises on the patient page: labelled checkboxes, the library's one function, the role rules."""

from __future__ import annotations

import re

from engage.db import session_scope
from engage.records.models import TreatmentPlan
from tests import seed
from tests.web.staff.support import HTML, signed_in


def _clinic(role: str) -> dict[str, int]:
    with session_scope() as session:
        clinic = seed.clinic(session)
        seed.staff(session, clinic.id, "desk@clinic.example", role)
        ana = seed.patient(session, clinic.id, email="ana@example.com")
        return {"clinic": clinic.id, "ana": ana.id, "plan": seed.enrolled(session, ana.id)}


def _exercises(plan_id: int) -> list[str]:
    with session_scope() as session:
        return list(session.get_one(TreatmentPlan, plan_id).exercises)


def test_the_practitioner_ticks_exercises_and_the_plan_keeps_them(db_url: str) -> None:
    ids = _clinic("practitioner")
    client, csrf = signed_in("desk@clinic.example")
    page = client.get(f"/patients/{ids['ana']}").text
    box = f'id="ex-{ids["plan"]}-figure-four"'
    assert box in page and f'<label for="ex-{ids["plan"]}-figure-four">' in page  # each checkbox has its label
    assert "Lying figure-four stretch" in page

    saved = client.post(
        f"/plans/{ids['plan']}/exercises", data={"csrf_token": csrf, "exercises": ["figure-four", "gentle-walk"]}
    )

    assert f"Exercises for plan {ids['plan']}: figure-four, gentle-walk." in saved.text
    assert _exercises(ids["plan"]) == ["figure-four", "gentle-walk"]
    ticked = re.search(rf'<input type="checkbox" {box}[^>]*>', saved.text)
    assert ticked is not None and "checked" in ticked.group(0)
    cleared = client.post(f"/plans/{ids['plan']}/exercises", data={"csrf_token": csrf})
    assert "none picked" in cleared.text and _exercises(ids["plan"]) == []


def test_an_unknown_exercise_is_refused_and_changes_nothing(db_url: str) -> None:
    ids = _clinic("practitioner")
    client, csrf = signed_in("desk@clinic.example")
    client.post(f"/plans/{ids['plan']}/exercises", data={"csrf_token": csrf, "exercises": ["figure-four"]})

    page = client.post(f"/plans/{ids['plan']}/exercises", data={"csrf_token": csrf, "exercises": ["cartwheel"]})

    assert "Exercises not changed: no exercise &#39;cartwheel&#39;" in page.text
    assert _exercises(ids["plan"]) == ["figure-four"]


def test_exercises_form_needs_the_csrf_token_and_the_right_role(db_url: str) -> None:
    ids = _clinic("front_desk")  # exercises are a clinical choice
    client, csrf = signed_in("desk@clinic.example")
    assert f'action="/plans/{ids["plan"]}/exercises"' not in client.get(f"/patients/{ids['ana']}").text

    refused = client.post(
        f"/plans/{ids['plan']}/exercises", data={"csrf_token": csrf, "exercises": ["figure-four"]}, headers=HTML
    )
    assert refused.status_code == 403
    with session_scope() as session:
        seed.staff(session, ids["clinic"], "front@clinic.example", "practitioner")
    front, _ = signed_in("front@clinic.example")
    forged = front.post(
        f"/plans/{ids['plan']}/exercises", data={"csrf_token": "forged", "exercises": ["figure-four"]}, headers=HTML
    )
    assert forged.status_code in (400, 403)
    assert _exercises(ids["plan"]) == []
