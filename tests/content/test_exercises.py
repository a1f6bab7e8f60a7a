"""The exercise library, a plan's picked exercises, and the stretch prompt that links to them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from engage.content.exercises import LANGUAGES, ExerciseError, load_exercises, parse_exercise, set_plan_exercises
from engage.content.message_context import sample_context
from engage.content.rendering import render_sms
from engage.errors import InvalidInput
from engage.records import clinics, patients, plans


def test_every_shipped_exercise_is_written_in_both_languages_and_says_when_to_stop() -> None:
    library = load_exercises()
    assert {"figure-four", "knee-to-chest", "prone-press-up", "gentle-walk"} <= set(library)
    for exercise in library.values():
        for lang in LANGUAGES:
            view = exercise.view(lang)
            assert view["name"] and view["steps"] and view["stop_when"]
        assert "pain, tingling or numbness spreads down your leg" in exercise.stop_when["en"]
    figure_four = library["figure-four"].view("en")["steps"]
    assert any("right ankle over your left knee" in line for line in figure_four)
    assert any(line.startswith("Then switch") for line in figure_four)


def test_an_exercise_without_spanish_or_a_stop_sign_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("key: bad\nname: {en: Bad}\nsteps: {en: [Move]}\nstop_when: {en: Stop if it hurts.}\n")
    with pytest.raises(ExerciseError, match="lacks es"):
        parse_exercise(path)
    path.write_text(
        "key: bad\nname: {en: Bad, es: Malo}\nsteps: {en: [Move], es: [Muévase]}\n"
        "stop_when: {en: Stop if it hurts., es: Pare si le bajan por la pierna.}\n"
    )
    with pytest.raises(ExerciseError, match="must say when to stop"):
        parse_exercise(path)


def test_a_practitioner_picks_exercises_for_a_plan(session: Session) -> None:
    clinic = clinics.create_clinic(
        session,
        name="Clinic",
        timezone="America/New_York",
        address="1 Main St",
        email="clinic@example.com",
        actor="test",
    )
    patient = patients.add_patient(
        session, clinic_id=clinic.id, first_name="Pat", last_name="Doe", phone="+12025550123", actor="test"
    ).patient
    plan = plans.create_plan(
        session,
        patient_id=patient.id,
        condition="sciatica",
        modality="dry needling",
        first="2030-01-07T09:00",
        sessions=2,
        every=timedelta(days=7),
        actor="test",
    )
    assert set_plan_exercises(session, plan.id, ["prone-press-up", " figure-four "], actor="test").exercises == [
        "prone-press-up",
        "figure-four",
    ]
    with pytest.raises(InvalidInput, match="no exercise 'lunges'"):
        set_plan_exercises(session, plan.id, ["lunges"], actor="test")
    with pytest.raises(InvalidInput, match="given twice"):
        set_plan_exercises(session, plan.id, ["figure-four", "figure-four"], actor="test")
    assert set_plan_exercises(session, plan.id, [], actor="test").exercises == []


@pytest.mark.parametrize("locale", ["en", "es"])
def test_the_stretch_prompt_links_to_the_exercises_or_falls_back_to_what_was_shown(locale: str) -> None:
    picked = render_sms("stretch", sample_context("stretch", "sms", locale), locale).body
    none = render_sms("stretch", sample_context("stretch", "sms", locale, exercise_keys=[]), locale).body
    assert "/x/" in picked and "/x/" not in none
    if locale == "en":
        assert "if your practitioner gave you stretches" in none
        assert "pain, tingling or numbness spreads down your leg" in picked
    else:
        assert "si su terapeuta le dio estiramientos" in none
