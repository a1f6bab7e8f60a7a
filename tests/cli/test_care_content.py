"""``engage clinic settings`` and ``engage plan exercises`` end to end (issue 14)."""

from __future__ import annotations

from sqlalchemy import select

from engage.db import session_scope
from engage.records.models import Clinic
from tests.cli import engage
from tests.cli.test_records import make_clinic


def test_clinic_settings_saves_a_short_sms_name_and_caps_and_refuses_a_condition_word(db_url: str) -> None:
    clinic_id = make_clinic(**{"--name": "Lycoming Orthopedic & Sports Acupuncture"})
    refused = engage("clinic", "settings", str(clinic_id), "--sms-name", "NoMoreSciatica")
    assert refused.code == 2 and "condition or treatment" in refused.stderr and "Traceback" not in refused.stderr
    saved = engage(
        "clinic",
        "settings",
        str(clinic_id),
        "--sms-name",
        "Lycoming Ortho",
        "--sms-per-week",
        "3",
        "--step-off",
        "stretch,aftercare",
        "--json",
    ).json
    assert (saved["sms_name"], saved["sms_per_day"], saved["sms_per_week"]) == ("Lycoming Ortho", 1, 3)
    assert saved["steps_off"] == ["aftercare", "stretch"]
    with session_scope() as session:
        clinic = session.scalars(select(Clinic).where(Clinic.id == clinic_id)).one()
        assert clinic.sms_name == "Lycoming Ortho" and clinic.sms_per_week == 3


def test_plan_exercises_sets_and_shows_the_practitioners_picks(db_url: str) -> None:
    clinic_id = make_clinic()
    patient_id = int(
        engage(
            "patient",
            "add",
            "--clinic",
            str(clinic_id),
            "--first-name",
            "Ana",
            "--last-name",
            "Ruiz",
            "--phone",
            "+12025550123",
            "--json",
        ).json["id"]
    )
    plan_id = int(
        engage(
            "plan",
            "create",
            "--patient",
            str(patient_id),
            "--condition",
            "sciatica",
            "--modality",
            "dry needling",
            "--first",
            "2030-01-07T09:00",
            "--sessions",
            "2",
            "--every",
            "7d",
            "--json",
        ).json["id"]
    )
    assert engage("plan", "exercises", str(plan_id), "--set", "figure-four,gentle-walk", "--json").json[
        "exercises"
    ] == ["figure-four", "gentle-walk"]
    shown = engage("plan", "exercises", str(plan_id))
    assert shown.code == 0 and "figure-four, gentle-walk" in shown.stdout
    unknown = engage("plan", "exercises", str(plan_id), "--set", "lunges")
    assert unknown.code == 2 and "no exercise 'lunges'" in unknown.stderr and "Traceback" not in unknown.stderr
