"""The STarT Back questions on the intake page: asked only where the clinic installed the licensed wording
(a placeholder wording stands in for Keele's here), all nine or none, scored into a risk group the Outcomes
figures are grouped by."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from engage.config import get_settings
from engage.content.links import intake_url
from engage.db import session_scope
from engage.records.models import Screening
from engage.web.app import create_app
from tests.fixtures.webhooks.support import PUBLIC_URL, make_world

WORDING = """\
items:
{items}
agree: "Agree"
disagree: "Disagree"
bother: ["Not at all", "Slightly", "Moderately", "Very much", "Extremely"]
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the templates with a placeholder STarT Back wording in English only."""
    root = tmp_path / "templates"
    shutil.copytree(get_settings().templates_dir, root)
    items = "\n".join(f'  - "Placeholder statement {n}"' for n in range(1, 10))
    (root / "questionnaires" / "start-back.en.yaml").write_text(WORDING.format(items=items), encoding="utf-8")
    monkeypatch.setenv("ENGAGE_TEMPLATES_DIR", str(root))
    get_settings.cache_clear()
    return root


def _screenings(patient_id: int) -> list[tuple[list[int], int, int, str]]:
    with session_scope() as session:
        rows = session.execute(
            select(Screening.answers, Screening.total, Screening.subscale, Screening.risk).where(
                Screening.patient_id == patient_id
            )
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_without_the_wording_the_questions_are_not_asked(sqlite_url: str) -> None:
    world = make_world()
    page = TestClient(create_app()).get(intake_url(world.patient_id).removeprefix(PUBLIC_URL))
    assert page.status_code == 200 and "STarT Back" not in page.text


def test_the_nine_answers_are_recorded_with_their_risk_group(sqlite_url: str, installed: Path) -> None:
    world = make_world()
    client = TestClient(create_app())
    url = intake_url(world.patient_id).removeprefix(PUBLIC_URL)
    page = client.get(url)
    assert "Placeholder statement 9" in page.text and 'name="sb_9" value="4"' in page.text
    assert _screenings(world.patient_id) == []  # a GET records nothing

    partial = client.post(url, data={"pain": "5", "sb_1": "1", "sb_2": "0"})
    assert partial.status_code == 400
    assert "Answer all nine questions about your back, or leave them all empty." in partial.text
    assert 'name="sb_1" value="1" checked' in partial.text  # what was chosen stays
    assert _screenings(world.patient_id) == []

    answers = {f"sb_{n}": value for n, value in enumerate(["0", "0", "0", "0", "1", "1", "1", "0", "4"], start=1)}
    done = client.post(url, data={"pain": "5", **answers})
    assert done.status_code == 200
    assert _screenings(world.patient_id) == [([0, 0, 0, 0, 1, 1, 1, 0, 4], 4, 4, "high")]

    just_pain = client.post(url, data={"pain": "4"})  # the questions stay optional
    assert just_pain.status_code == 200 and len(_screenings(world.patient_id)) == 1
