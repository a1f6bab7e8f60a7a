"""Input and state rules, through the real ``engage`` command on SQLite and PostgreSQL: length limits,
appointment rules (past, started, overlap, DST fall-back, region time zones), duplicate phones."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from engage.cli import main
from engage.clock import frozen, utcnow
from engage.db import session_scope
from engage.records.limits import TooLong, check_values, max_length
from engage.records.models import Appointment, AppointmentStatus, Clinic, Patient, TreatmentPlan

pytestmark = pytest.mark.usefixtures("db_url")

CLINIC = [
    "--name",
    "Back in Motion",
    "--timezone",
    "America/New_York",
    "--address",
    "12 Elm St, Springfield, IL",
    "--email",
    "front@backinmotion.example",
]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def ok(*args: str) -> dict:
    import json

    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def refused(*args: str) -> str:
    """The one-sentence error of a refused command (exit 2)."""
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def count(model: type) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def clinic() -> int:
    return int(ok("clinic", "create", *CLINIC)["id"])


def patient(clinic_id: int, *extra: str) -> int:
    return int(
        ok("patient", "add", "--clinic", str(clinic_id), "--first-name", "Ana", "--last-name", "Ruiz", *extra)["id"]
    )


def plan(patient_id: int, first: datetime, sessions: int = 2, *extra: str) -> dict:
    return ok(
        "plan",
        "create",
        "--patient",
        str(patient_id),
        "--condition",
        "sciatica",
        "--modality",
        "dry needling",
        "--first",
        first.isoformat(),
        "--sessions",
        str(sessions),
        "--every",
        "7d",
        *extra,
    )


def soon(days: int = 3, hour: int = 15) -> datetime:
    return (utcnow() + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)


# --- length limits ---------------------------------------------------------------------------------


def test_the_limits_are_the_columns_own() -> None:
    assert max_length(Patient, "first_name") == 100 and max_length(Clinic, "name") == 200
    assert max_length(Clinic, "address") == 500  # a Text column, limited by its info


def test_a_too_long_value_names_its_field_for_forms_and_the_api() -> None:
    with pytest.raises(TooLong) as refused_name:
        check_values(Patient, first_name="A" * 101)
    assert (refused_name.value.field, refused_name.value.limit) == ("first_name", 100)


@pytest.mark.parametrize(
    ("field", "limit", "sentence"),
    [
        ("--name", 200, "the clinic name is too long: at most 200 characters, not 201"),
        ("--address", 500, "the clinic address is too long: at most 500 characters, not 501"),
    ],
)
def test_an_over_long_clinic_field_is_refused_and_nothing_written(field: str, limit: int, sentence: str) -> None:
    args = dict(zip(CLINIC[::2], CLINIC[1::2], strict=True))
    args[field] = "x" * (limit + 1)

    error = refused("clinic", "create", *[p for pair in args.items() for p in pair])

    assert error == f"error: {sentence}"
    assert count(Clinic) == 0


def test_an_over_long_patient_name_is_refused_and_nothing_written() -> None:
    clinic_id = clinic()

    error = refused(
        "patient",
        "add",
        "--clinic",
        str(clinic_id),
        "--first-name",
        "A" * 300,
        "--last-name",
        "Ruiz",
        "--email",
        "a@example.com",
    )

    assert error == "error: the patient first name is too long: at most 100 characters, not 300"
    assert count(Patient) == 0


@pytest.mark.parametrize("field", ["--condition", "--modality"])
def test_an_over_long_plan_field_is_refused_and_nothing_written(field: str) -> None:
    patient_id = patient(clinic(), "--email", "a@example.com")
    args = {"--condition": "sciatica", "--modality": "dry needling", field: "y" * 101}

    error = refused(
        "plan",
        "create",
        "--patient",
        str(patient_id),
        *[p for pair in args.items() for p in pair],
        "--first",
        soon().isoformat(),
        "--sessions",
        "2",
        "--every",
        "7d",
    )

    assert error == f"error: the treatment plan {field[2:]} is too long: at most 100 characters, not 101"
    assert count(TreatmentPlan) == 0 and count(Appointment) == 0


def test_an_over_long_enrolment_author_is_refused() -> None:
    patient_id = patient(clinic(), "--email", "a@example.com")
    plan_id = plan(patient_id, soon())["id"]

    error = refused(
        "enroll",
        "--patient",
        str(patient_id),
        "--plan",
        str(plan_id),
        "--sequence",
        "dry-needling-sciatica",
        "--by",
        "z" * 321,
    )

    assert error == "error: the enrollment enrolled by is too long: at most 320 characters, not 321"


# --- appointment rules -----------------------------------------------------------------------------


def test_plan_add_and_move_into_the_past_are_refused_unless_allowed() -> None:
    patient_id = patient(clinic(), "--email", "a@example.com")
    past = utcnow() - timedelta(days=2)

    assert "is in the past; to record one that happened, allow it (--allow-past" in refused(
        "plan",
        "create",
        "--patient",
        str(patient_id),
        "--condition",
        "c",
        "--modality",
        "m",
        "--first",
        past.isoformat(),
        "--sessions",
        "2",
        "--every",
        "7d",
    )
    assert count(TreatmentPlan) == 0

    history = plan(patient_id, past, 1, "--allow-past")  # staff recording a visit that happened
    created = plan(patient_id, soon(days=10))
    plan_id, appointment_id = created["id"], created["appointments"][0]["id"]

    assert "is in the past" in refused("appointment", "add", "--plan", str(plan_id), "--start", past.isoformat())
    assert "is in the past" in refused("appointment", "move", str(appointment_id), "--to", past.isoformat())
    added = ok(
        "appointment", "add", "--plan", str(plan_id), "--start", (past - timedelta(days=1)).isoformat(), "--allow-past"
    )
    assert added["status"] == "booked" and history["appointments"][0]["status"] == "booked"
    with session_scope() as session:
        assert session.get_one(Appointment, appointment_id).start_at > utcnow()  # the refused move wrote nothing


def test_complete_and_no_show_only_once_the_appointment_has_started() -> None:
    patient_id = patient(clinic(), "--email", "a@example.com")
    appointment_id = plan(patient_id, soon(days=2))["appointments"][0]["id"]

    for command in ("complete", "no-show"):
        error = refused("appointment", command, str(appointment_id))
        assert error.startswith(f"error: appointment {appointment_id} has not started yet")
    with session_scope() as session:
        appointment = session.get_one(Appointment, appointment_id)
        assert appointment.status is AppointmentStatus.BOOKED
        started = appointment.start_at + timedelta(minutes=5)

    with frozen(started):
        assert ok("appointment", "complete", str(appointment_id))["status"] == "completed"


def test_moving_onto_another_booked_appointment_of_the_patient_is_refused_naming_it() -> None:
    patient_id = patient(clinic(), "--email", "a@example.com")
    first, second = (a["id"] for a in plan(patient_id, soon(days=3))["appointments"])
    other_plan = plan(patient_id, soon(days=4))
    third = other_plan["appointments"][0]["id"]
    with session_scope() as session:
        second_start = session.get_one(Appointment, second).start_at

    error = refused("appointment", "move", str(first), "--to", (second_start + timedelta(minutes=20)).isoformat())

    assert f"overlaps appointment {second} of the same patient" in error
    # Another plan of the same patient counts too; adding onto a booked slot is refused the same way.
    assert f"overlaps appointment {second}" in refused(
        "appointment", "add", "--plan", str(other_plan["id"]), "--start", second_start.isoformat()
    )
    assert ok("appointment", "move", str(third), "--to", (second_start + timedelta(minutes=45)).isoformat())
    with session_scope() as session:
        assert session.get_one(Appointment, first).start_at < second_start  # not moved


def test_a_plan_needs_a_condition_and_a_treatment_and_nothing_is_written() -> None:
    patient_id = patient(clinic(), "--email", "a@example.com")
    base = ["plan", "create", "--patient", str(patient_id), "--first", soon().isoformat(), "--sessions", "3"]

    blank_condition = refused(*base, "--every", "7d", "--condition", "  ", "--modality", " ")
    blank_treatment = refused(*base, "--every", "7d", "--condition", "sciatica", "--modality", "\t")

    assert blank_condition == "error: a plan needs a condition"
    assert blank_treatment == "error: a plan needs a treatment (modality)"
    assert count(TreatmentPlan) == 0 and count(Appointment) == 0


def test_plan_sessions_that_overlap_each_other_are_refused_and_nothing_is_written() -> None:
    patient_id = patient(clinic(), "--email", "a@example.com")
    first = soon(days=3, hour=15)

    error = refused(
        "plan", "create", "--patient", str(patient_id), "--condition", "sciatica", "--modality", "dry needling",
        "--first", first.isoformat(), "--sessions", "3", "--every", "30m", "--duration", "45m",
    )  # fmt: skip

    local = first.astimezone(timezone.utc).astimezone(ZoneInfo("America/New_York"))
    assert error.startswith(f"error: session 1 ({local:%Y-%m-%d %H:%M}) and session 2 (")
    assert "would overlap: the time between sessions must be at least the session length" in error
    assert count(TreatmentPlan) == 0 and count(Appointment) == 0
    # Back to back is fine.
    assert len(plan(patient_id, first, 3, "--every", "45m", "--duration", "45m")["appointments"]) == 3


def test_a_plan_session_on_another_booked_visit_is_refused_naming_it() -> None:
    patient_id = patient(clinic(), "--email", "a@example.com")
    booked = plan(patient_id, soon(days=10))["appointments"][0]

    error = refused(
        "plan", "create", "--patient", str(patient_id), "--condition", "knee pain", "--modality", "dry needling",
        "--first", soon(days=3, hour=15).isoformat(), "--sessions", "3", "--every", "7d",
    )  # fmt: skip

    assert error.startswith("error: session 2 (")
    assert f"overlaps appointment {booked['id']} of the same patient" in error
    assert count(TreatmentPlan) == 1 and count(Appointment) == 2


def test_an_ambiguous_fall_back_time_is_refused_with_both_candidates() -> None:
    patient_id = patient(clinic(), "--email", "a@example.com")
    created = plan(patient_id, soon(days=5))
    with frozen(datetime(2026, 10, 1, tzinfo=timezone.utc)):  # before the 1 November 2026 change in New York
        error = refused("appointment", "move", str(created["appointments"][0]["id"]), "--to", "2026-11-01T01:30")

    assert error == (
        "error: 2026-11-01 01:30 happens twice in America/New_York (clocks go back then): "
        "write 2026-11-01T01:30-04:00 or 2026-11-01T01:30-05:00"
    )


@pytest.mark.parametrize("zone", ["EST", "US/Eastern", "Etc/GMT+5", "UTC"])
def test_a_time_zone_must_be_a_region_zone(zone: str) -> None:
    args = [zone if part == "America/New_York" else part for part in CLINIC]

    error = refused("clinic", "create", *args)

    assert (
        error == f"error: {zone!r} is not a region time zone: use the IANA name of the place, such as America/New_York"
    )
    clinic_id = clinic()
    assert "is not a region time zone" in refused(
        "patient",
        "add",
        "--clinic",
        str(clinic_id),
        "--first-name",
        "A",
        "--last-name",
        "B",
        "--email",
        "a@example.com",
        "--timezone",
        zone,
    )
    assert count(Patient) == 0


# --- duplicate phones ------------------------------------------------------------------------------


def test_a_shared_phone_is_allowed_with_a_warning() -> None:
    clinic_id = clinic()
    first = patient(clinic_id, "--phone", "+14155550123")

    second = ok(
        "patient",
        "add",
        "--clinic",
        str(clinic_id),
        "--first-name",
        "Ben",
        "--last-name",
        "Ruiz",
        "--phone",
        "(415) 555-0123",
    )
    human = run(
        "patient",
        "add",
        "--clinic",
        str(clinic_id),
        "--first-name",
        "Cy",
        "--last-name",
        "Ruiz",
        "--phone",
        "+1 415 555 0123",
    )
    alone = ok(
        "patient",
        "add",
        "--clinic",
        str(clinic_id),
        "--first-name",
        "Di",
        "--last-name",
        "Lee",
        "--phone",
        "+14155550199",
    )

    assert second["warnings"] == [
        f"patient {first} of this clinic has the same phone number; SMS replies from it reach only one of them"
    ]
    assert human.exit_code == 0
    assert human.output.splitlines()[1] == (
        f"warning: patients {first}, {second['id']} of this clinic have the same phone number; "
        "SMS replies from it reach only one of them"
    )
    assert alone["warnings"] == []
    assert count(Patient) == 4
