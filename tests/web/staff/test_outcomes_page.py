"""The Outcomes page and its exports for a practitioner; the desk records a baseline; roles are kept."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from engage.clock import utcnow
from engage.db import session_scope
from engage.records.models import Measure, Outcome
from tests import seed
from tests.outcomes import world as fixture
from tests.web.staff.support import HTML, signed_in


def _world() -> fixture.World:
    with session_scope() as session:
        world = fixture.build(session)
        seed.staff(session, world.clinic_id, "doc@clinic.example", role="practitioner")
        seed.staff(session, world.clinic_id, "desk@clinic.example", role="front_desk")
        return world


def _text(html: str) -> str:
    return re.sub(r"\s+([,.)])", r"\1", re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def test_the_practitioner_sees_sixty_percent_with_its_interval_and_pooled_small_cells(sqlite_url: str) -> None:
    world = _world()
    doctor, _ = signed_in("doc@clinic.example")
    page = doctor.get("/outcomes")
    assert page.status_code == 200
    text = _text(page.text)
    assert "Responders (2 points and 30 %): 60 %, 6 of 10 episodes with a follow-up" in text
    assert "(95 % confidence interval 31 % to 83 %)" in text
    assert "Dr. Lee 6 6 4 67 %" in text
    assert "Other (fewer than 5 episodes each) 4 4 2 50 %" in text
    assert "Dr. Diaz" not in text.split("1. From enrollment")[1]  # only in the filter's list
    assert "Clinic 10 10 6 60 %" in text
    assert "Kaplan–Meier median: 14.1 days and 3 sessions" in text
    worse = world.patients["lee"][5]
    assert f'href="/patients/{worse}"' in page.text and "worse by 2 or more (8 → 10)" in text
    assert page.text.count("<svg") == 2 and "Pain by session (the chart's figures)" in text
    assert "By STarT Back risk at intake" in text and "Not screened 10 10 6 60 %" in text
    assert "No PSFS baseline in these episodes yet" in text

    only_diaz = _text(doctor.get(f"/outcomes?practitioner={world.diaz}").text)
    assert "Responders (2 points and 30 %): 50 %, 2 of 4" in only_diaz
    bad = doctor.get("/outcomes?from=tomorrow").text
    assert "from is a date like 2026-12-01" in bad and 'aria-invalid="true"' in bad


def test_the_csv_export_and_its_deidentified_form(sqlite_url: str) -> None:
    _world()
    doctor, _ = signed_in("doc@clinic.example")
    named = list(csv.DictReader(io.StringIO(doctor.get("/outcomes/episodes.csv").text)))
    assert len(named) == 10 and named[0]["patient"].startswith("P")
    assert sum(r["responder_both"] == "yes" for r in named) == 6
    plain = doctor.get("/outcomes/episodes.csv?deidentified=1").text
    rows = list(csv.DictReader(io.StringIO(plain)))
    assert len(rows) == 10 and "patient" not in rows[0] and "patient_id" not in rows[0]
    assert re.fullmatch(r"\d{4}-\d\d", rows[0]["first_session_month"])
    assert "+1415" not in plain and "P1 " not in plain


def test_the_front_desk_records_a_baseline_but_does_not_see_outcomes(sqlite_url: str) -> None:
    world = _world()
    desk, csrf = signed_in("desk@clinic.example")
    assert desk.get("/outcomes", headers=HTML).status_code == 403
    assert 'href="/outcomes"' not in desk.get("/").text
    patient_id = world.patients["lee"][6]
    page = desk.get(f"/patients/{patient_id}").text
    assert "Baseline at the desk" in page
    taken = (utcnow() - timedelta(days=21)).strftime("%Y-%m-%dT%H:%M")
    form = {"csrf_token": csrf, "pain": "7", "at": taken, "activity_1": "Sitting", "rating_1": "3"}
    answer = desk.post(f"/patients/{patient_id}/baseline", data=form)
    assert "Baseline recorded." in answer.text
    bad = desk.post(f"/patients/{patient_id}/baseline", data={**form, "pain": "12"})
    assert "Baseline not recorded: a score is a whole number from 0 to 10." in bad.text
    with session_scope() as session:
        rows = session.execute(
            select(Outcome.measure, Outcome.score, Outcome.item).where(Outcome.patient_id == patient_id)
        ).all()
    assert sorted(rows) == [(Measure.NPRS, 7, None), (Measure.PSFS, 3, "Sitting")]
    doctor, _ = signed_in("doc@clinic.example")
    assert "with a baseline" in doctor.get("/outcomes").text
    assert _text(doctor.get("/outcomes").text).count("11 with a baseline") == 1


def test_the_page_names_the_most_urgent_patients_and_counts_the_rest(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clinic with thousands to act on gets a page it can read (and render fast): the first few by name."""
    from engage.outcomes import summary
    from engage.web.staff import outcomes

    world = _world()
    worse = world.patients["lee"][5]
    monkeypatch.setattr(summary, "ACT_ON_NAMED", 0)
    monkeypatch.setattr(outcomes, "ACT_ON_NAMED", 0)
    doctor, _ = signed_in("doc@clinic.example")
    page = doctor.get("/outcomes").text
    assert f'href="/patients/{worse}"' not in page
    text = _text(page)
    assert "And 1 more, less urgent: narrow the filters above, or download the episodes as CSV." in text
