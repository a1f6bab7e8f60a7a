"""The records CLI end to end, on SQLite and PostgreSQL: clinic -> patient -> plan, and bad input."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from engage.db import session_scope
from engage.models import Appointment, AuditEvent, Patient, TreatmentPlan
from tests.cli import engage


def make_clinic(**overrides: str) -> int:
    args = {
        "--name": "Back in Motion", "--timezone": "America/New_York", "--address": "12 Elm St, Springfield, IL 62701",
        "--email": "front@backinmotion.example", "--sms-from": "+14155550100", **overrides,
    }
    flat = [part for pair in args.items() for part in pair]
    return int(engage("clinic", "create", *flat, "--json").json["id"])


def add_patient(clinic_id: int, *extra: str) -> int:
    return int(engage("patient", "add", "--clinic", str(clinic_id), "--first-name", "Ana", "--last-name", "Ruiz",
                      *extra, "--json").json["id"])


def count(model: type) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_clinic_patient_plan_round_trip(db_url: str) -> None:
    clinic_id = make_clinic()
    patient_id = add_patient(clinic_id, "--phone", "(415) 555-0123", "--email", "Ana@Example.COM", "--locale", "es")

    plan = engage("plan", "create", "--patient", str(patient_id), "--condition", "sciatica", "--modality",
                  "dry needling", "--first", "2026-10-25T09:00", "--sessions", "6", "--every", "7d", "--json").json

    starts = [datetime.fromisoformat(a["start"]) for a in plan["appointments"]]
    assert len(starts) == 6
    # 09:00 New York wall time on both sides of the 1 November DST change: 13:00Z then 14:00Z.
    assert [s.strftime("%H:%M") for s in starts] == ["13:00"] + ["14:00"] * 5
    assert all(s.utcoffset() is not None and s.utcoffset().total_seconds() == 0 for s in starts)
    assert all(
        datetime.fromisoformat(a["end"]) - datetime.fromisoformat(a["start"]) == timedelta(minutes=45)
        for a in plan["appointments"]
    )

    shown = engage("patient", "show", str(patient_id), "--json").json
    assert shown["phone"] == "+14155550123"
    assert shown["email"] == "ana@example.com"
    assert shown["timezone"] == "America/New_York" and shown["locale"] == "es"
    assert [a["id"] for a in shown["plans"][0]["appointments"]] == [a["id"] for a in plan["appointments"]]
    assert count(AuditEvent) >= 3


def test_time_with_offset_is_exact_and_duration_is_kept(db_url: str) -> None:
    patient_id = add_patient(make_clinic(), "--email", "a@example.com", "--timezone", "Europe/Madrid")
    plan = engage("plan", "create", "--patient", str(patient_id), "--condition", "sciatica", "--modality", "dn",
                  "--first", "2026-12-01T09:00:00-05:00", "--sessions", "2", "--every", "3d12h", "--duration", "30m",
                  "--json").json
    assert [a["start"] for a in plan["appointments"]] == ["2026-12-01T14:00:00+00:00", "2026-12-05T02:00:00+00:00"]
    assert plan["appointments"][0]["end"] == "2026-12-01T14:30:00+00:00"


def test_appointment_changes(db_url: str) -> None:
    patient_id = add_patient(make_clinic(), "--email", "a@example.com")
    plan = engage("plan", "create", "--patient", str(patient_id), "--condition", "sciatica", "--modality", "dn",
                  "--first", "2026-12-01T09:00", "--sessions", "3", "--every", "7d", "--json").json
    first, second, third = (str(a["id"]) for a in plan["appointments"])

    moved = engage("appointment", "move", first, "--to", "2026-12-02T10:30", "--json").json
    assert (moved["start"], moved["end"]) == ("2026-12-02T15:30:00+00:00", "2026-12-02T16:15:00+00:00")
    assert engage("appointment", "cancel", second, "--json").json["status"] == "cancelled"
    assert engage("appointment", "complete", first, "--json").json["status"] == "completed"
    assert engage("appointment", "no-show", third, "--json").json["status"] == "no_show"

    refused = engage("appointment", "move", second, "--to", "2026-12-20T09:00")
    assert refused.code == 2 and "cancelled" in refused.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--phone", "+1 555"], "invalid phone number"),
        (["--phone", "not a phone"], "invalid phone number"),
        (["--email", "a@example.com", "--timezone", "Mars/Olympus_Mons"], "unknown time zone"),
        (["--email", "not-an-email"], "invalid email address"),
        ([], "needs an email address or a phone number"),
        (["--email", "a@example.com", "--locale", "xx"], "unsupported locale"),
    ],
)
def test_bad_patient_input_is_refused_and_writes_nothing(db_url: str, args: list[str], says: str) -> None:
    clinic_id = make_clinic()
    result = engage("patient", "add", "--clinic", str(clinic_id), "--first-name", "A", "--last-name", "B", *args,
                    "--json")
    assert result.code == 2
    assert result.stdout == ""
    assert says in result.stderr and "Traceback" not in result.stderr
    assert count(Patient) == 0


def test_unknown_ids_and_duplicates_are_refused(db_url: str) -> None:
    clinic_id = make_clinic()
    add_patient(clinic_id, "--email", "ana@example.com")

    duplicate = engage("patient", "add", "--clinic", str(clinic_id), "--first-name", "A", "--last-name", "B",
                       "--email", "ANA@example.com")
    assert duplicate.code == 2 and "already has that email" in duplicate.stderr
    assert "no clinic with id 999" in engage("patient", "add", "--clinic", "999", "--first-name", "A",
                                             "--last-name", "B", "--email", "b@example.com").stderr
    assert "no patient with id 999" in engage("patient", "show", "999").stderr
    assert "no patient with id 999" in engage("plan", "create", "--patient", "999", "--condition", "x",
                                              "--modality", "y", "--first", "2026-12-01T09:00", "--sessions", "2",
                                              "--every", "7d").stderr
    assert "no appointment with id 5" in engage("appointment", "cancel", "5").stderr
    assert count(Patient) == 1


def test_bad_plan_and_appointment_input_writes_nothing(db_url: str) -> None:
    patient_id = str(add_patient(make_clinic(), "--email", "a@example.com"))
    base = ["plan", "create", "--patient", patient_id, "--condition", "sciatica", "--modality", "dn"]
    negative = engage(*base, "--first", "2026-12-01T09:00", "--sessions", "2", "--every", "7d", "--duration", "-30m")
    assert negative.code == 2 and "must end after it starts" in negative.stderr
    gap = engage(*base, "--first", "2026-03-08T02:30", "--sessions", "2", "--every", "7d")
    assert gap.code == 2 and "does not exist in America/New_York" in gap.stderr
    assert engage(*base, "--first", "tomorrow", "--sessions", "2", "--every", "7d").code == 2
    assert count(TreatmentPlan) == 0 and count(Appointment) == 0

    plan_id = str(engage(*base, "--first", "2026-12-01T09:00", "--sessions", "1", "--every", "7d", "--json").json["id"])
    backwards = engage("appointment", "add", "--plan", plan_id, "--start", "2026-12-10T10:00",
                       "--end", "2026-12-10T09:00")
    assert backwards.code == 2 and "must end after it starts" in backwards.stderr
    assert count(Appointment) == 1


def test_bad_clinic_input(db_url: str) -> None:
    result = engage("clinic", "create", "--name", "X", "--timezone", "Nowhere/City", "--address", "1 St",
                    "--email", "x@example.com")
    assert result.code == 2 and "unknown time zone" in result.stderr
    result = engage("clinic", "create", "--name", "X", "--timezone", "UTC", "--address", " ", "--email", "x@example.com")
    assert result.code == 2 and "postal address" in result.stderr


def test_db_upgrade_is_repeatable(db_url: str) -> None:
    first = engage("db", "upgrade", "--json").json
    again = engage("db", "upgrade", "--json").json
    assert first == again and first["revision"]
