"""The records CLI end to end, on SQLite and PostgreSQL: clinic -> patient -> plan, and bad input."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from engage.clock import utcnow
from engage.db import session_scope
from engage.records import patients, plans
from engage.records.models import Appointment, AuditEvent, Clinic, Patient, TreatmentPlan
from tests.cli import engage

PHOENIX = ZoneInfo("America/Phoenix")  # no DST: "24 h before" stays the same wall time whatever today is
DEFAULT_QUIET = {"start": "20:00", "end": "08:00"}


def make_clinic(**overrides: str) -> int:
    args = {
        "--name": "Back in Motion",
        "--timezone": "America/New_York",
        "--address": "12 Elm St, Springfield, IL 62701",
        "--email": "front@backinmotion.example",
        "--sms-from": "+14155550100",
        **overrides,
    }
    flat = [part for pair in args.items() for part in pair]
    return int(engage("clinic", "create", *flat, "--json").json["id"])


def add_patient(clinic_id: int, *extra: str) -> int:
    return int(
        engage(
            "patient", "add", "--clinic", str(clinic_id), "--first-name", "Ana", "--last-name", "Ruiz", *extra, "--json"
        ).json["id"]
    )


def count(model: type) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_clinic_patient_plan_round_trip(db_url: str) -> None:
    clinic_id = make_clinic()
    patient_id = add_patient(clinic_id, "--phone", "(415) 555-0123", "--email", "Ana@Example.COM", "--locale", "es")

    plan = engage(
        "plan",
        "create",
        "--patient",
        str(patient_id),
        "--condition",
        "sciatica",
        "--modality",
        "dry needling",
        "--first",
        "2027-10-31T09:00",
        "--sessions",
        "6",
        "--every",
        "7d",
        "--json",
    ).json

    starts = [datetime.fromisoformat(a["start"]) for a in plan["appointments"]]
    assert len(starts) == 6
    # 09:00 New York wall time on both sides of the 7 November 2027 DST change: 13:00Z then 14:00Z.
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
    assert shown["consent"]["sms"] == {"state": "opted_in", "source": "default", "at": None}
    assert "sms consent: opted in (default)" in engage("patient", "show", str(patient_id)).stdout
    assert count(AuditEvent) >= 3


def test_time_with_offset_is_exact_and_duration_is_kept(db_url: str) -> None:
    patient_id = add_patient(make_clinic(), "--email", "a@example.com", "--timezone", "Europe/Madrid")
    plan = engage(
        "plan",
        "create",
        "--patient",
        str(patient_id),
        "--condition",
        "sciatica",
        "--modality",
        "dn",
        "--first",
        "2027-12-01T09:00:00-05:00",
        "--sessions",
        "2",
        "--every",
        "3d12h",
        "--duration",
        "30m",
        "--json",
    ).json
    assert [a["start"] for a in plan["appointments"]] == ["2027-12-01T14:00:00+00:00", "2027-12-05T02:00:00+00:00"]
    assert plan["appointments"][0]["end"] == "2027-12-01T14:30:00+00:00"


def test_appointment_changes(db_url: str) -> None:
    patient_id = add_patient(make_clinic(), "--email", "a@example.com")
    plan = engage(
        "plan",
        "create",
        "--patient",
        str(patient_id),
        "--condition",
        "sciatica",
        "--modality",
        "dn",
        "--first",
        "2026-11-03T09:00",
        "--sessions",
        "3",
        "--every",
        "7d",
        "--allow-past",
        "--json",
    ).json
    first, second, third = (str(a["id"]) for a in plan["appointments"])

    # Staff recording visits that already happened: --allow-past, and they have started, so they can complete.
    moved = engage("appointment", "move", first, "--to", "2026-11-04T10:30", "--allow-past", "--json").json
    assert (moved["start"], moved["end"]) == ("2026-11-04T15:30:00+00:00", "2026-11-04T16:15:00+00:00")
    assert engage("appointment", "cancel", second, "--json").json["status"] == "cancelled"
    assert engage("appointment", "complete", first, "--json").json["status"] == "completed"
    assert engage("appointment", "no-show", third, "--json").json["status"] == "no_show"

    refused = engage("appointment", "move", second, "--to", "2027-12-20T09:00")
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
    result = engage(
        "patient", "add", "--clinic", str(clinic_id), "--first-name", "A", "--last-name", "B", *args, "--json"
    )
    assert result.code == 2
    assert result.stdout == ""
    assert says in result.stderr and "Traceback" not in result.stderr
    assert count(Patient) == 0


def test_unknown_ids_and_duplicates_are_refused(db_url: str) -> None:
    clinic_id = make_clinic()
    add_patient(clinic_id, "--email", "ana@example.com")

    duplicate = engage(
        "patient",
        "add",
        "--clinic",
        str(clinic_id),
        "--first-name",
        "A",
        "--last-name",
        "B",
        "--email",
        "ANA@example.com",
    )
    assert duplicate.code == 2 and "already has that email" in duplicate.stderr
    assert (
        "no clinic with id 999"
        in engage(
            "patient", "add", "--clinic", "999", "--first-name", "A", "--last-name", "B", "--email", "b@example.com"
        ).stderr
    )
    assert "no patient with id 999" in engage("patient", "show", "999").stderr
    assert (
        "no patient with id 999"
        in engage(
            "plan",
            "create",
            "--patient",
            "999",
            "--condition",
            "x",
            "--modality",
            "y",
            "--first",
            "2026-12-01T09:00",
            "--sessions",
            "2",
            "--every",
            "7d",
        ).stderr
    )
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

    plan_id = str(engage(*base, "--first", "2027-12-01T09:00", "--sessions", "1", "--every", "7d", "--json").json["id"])
    backwards = engage(
        "appointment", "add", "--plan", plan_id, "--start", "2027-12-10T10:00", "--end", "2027-12-10T09:00"
    )
    assert backwards.code == 2 and "must end after it starts" in backwards.stderr
    assert count(Appointment) == 1


def test_bad_clinic_input(db_url: str) -> None:
    result = engage(
        "clinic", "create", "--name", "X", "--timezone", "Nowhere/City", "--address", "1 St", "--email", "x@example.com"
    )
    assert result.code == 2 and "unknown time zone" in result.stderr
    result = engage(
        "clinic", "create", "--name", "X", "--timezone", "Europe/London", "--address", " ", "--email", "x@example.com"
    )
    assert result.code == 2 and "postal address" in result.stderr


def test_db_upgrade_is_repeatable(db_url: str) -> None:
    first = engage("db", "upgrade", "--json").json
    again = engage("db", "upgrade", "--json").json
    assert first == again and first["revision"]


# --- quiet hours: set per channel, validated when written, and pending messages follow ---


def stored_quiet_hours(clinic_id: int) -> dict[str, object]:
    with session_scope() as session:
        return dict(session.get_one(Clinic, clinic_id).quiet_hours)


def test_clinic_create_with_quiet_hours_and_show(db_url: str) -> None:
    created = engage(
        "clinic",
        "create",
        "--name",
        "Early Birds",
        "--timezone",
        "America/Chicago",
        "--address",
        "1 Oak St",
        "--email",
        "front@early.example",
        "--quiet-hours",
        "sms=21:30-7:00",
        "--quiet-hours",
        "email=OFF",
        "--json",
    ).json
    assert created["quiet_hours"] == {"sms": {"start": "21:30", "end": "07:00"}, "email": {"off": True}}
    assert stored_quiet_hours(created["id"]) == created["quiet_hours"]
    shown = engage("clinic", "show", str(created["id"]), "--json").json
    assert shown == created and shown["timezone"] == "America/Chicago"
    assert "sms: 21:30-07:00" in engage("clinic", "show", str(created["id"])).stdout

    plain = make_clinic()  # no --quiet-hours: nothing stored, the default in force and shown
    assert stored_quiet_hours(plain) == {}
    assert engage("clinic", "quiet-hours", str(plain), "--json").json["quiet_hours"] == {
        "sms": DEFAULT_QUIET,
        "email": DEFAULT_QUIET,
    }


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("sms=20:00-20:00", "start and end at the same time; write 'off'"),
        ("sms=24:00-08:00", "not a local time of day: '24:00'"),
        ("email=21:00-7:60", "not a local time of day: '7:60'"),
        ("sms=20:00", "must be START-END"),
        ("sms=20:00-", "must be START-END"),
        ("sms=", "must be START-END"),
        ("fax=20:00-08:00", "sms or email, not 'fax'"),
        ("sms", "write CHANNEL=START-END"),
    ],
)
def test_bad_quiet_hours_are_refused_and_no_clinic_is_written(db_url: str, value: str, says: str) -> None:
    result = engage(
        "clinic",
        "create",
        "--name",
        "X",
        "--timezone",
        "Europe/London",
        "--address",
        "1 St",
        "--email",
        "x@example.com",
        "--quiet-hours",
        value,
        "--json",
    )
    assert result.code == 2 and result.stdout == ""
    assert says in result.stderr and "Traceback" not in result.stderr
    assert count(Clinic) == 0


def test_changing_quiet_hours_validates_and_changes_only_what_is_given(db_url: str) -> None:
    clinic_id = str(make_clinic())
    set_sms = engage("clinic", "quiet-hours", clinic_id, "--sms", "22:00-06:00", "--json").json
    assert set_sms["quiet_hours"] == {"sms": {"start": "22:00", "end": "06:00"}, "email": DEFAULT_QUIET}
    assert set_sms["changes"]["moved"] == 0  # no patients yet
    set_email = engage("clinic", "quiet-hours", clinic_id, "--email", "off", "--json").json
    assert set_email["quiet_hours"] == {"sms": {"start": "22:00", "end": "06:00"}, "email": {"off": True}}

    for args, says in [
        (["--sms", "08:00-08:00"], "sms quiet hours: quiet hours '08:00-08:00' start and end at the same time"),
        (["--email", "9pm-7am"], "email quiet hours: not a local time of day: '9pm'"),
        (["--sms", "22:00-06:00", "--email", "25:00-06:00"], "email quiet hours"),
    ]:
        refused = engage("clinic", "quiet-hours", clinic_id, *args)
        assert refused.code == 2 and says in refused.stderr, refused.stderr
    assert stored_quiet_hours(int(clinic_id)) == {"sms": {"start": "22:00", "end": "06:00"}, "email": {"off": True}}
    assert "no clinic with id 999" in engage("clinic", "quiet-hours", "999", "--sms", "22:00-06:00").stderr


def early_patient_enrolled(clinic_id: int) -> tuple[int, int]:
    """A patient whose six weekly sessions start at 07:00 local ten days from now, enrolled; (patient, plan)."""
    first = (utcnow().astimezone(PHOENIX) + timedelta(days=10)).replace(hour=7, minute=0, second=0, microsecond=0)
    with session_scope() as session:
        patient = patients.add_patient(
            session,
            clinic_id=clinic_id,
            first_name="Ana",
            last_name="Ruiz",
            email="ana@example.com",
            phone="+12025550123",
            actor="test",
        ).patient
        plan = plans.create_plan(
            session,
            patient_id=patient.id,
            condition="sciatica",
            modality="dry needling",
            first=first.replace(tzinfo=None).isoformat(),
            sessions=6,
            every=timedelta(days=7),
            actor="test",
        )
        patient_id, plan_id = patient.id, plan.id
    enrolled = engage(
        "enroll", "--patient", str(patient_id), "--plan", str(plan_id), "--sequence", "dry-needling-sciatica", "--json"
    ).json
    # booking confirmation, what-to-expect, 6 reminders, aftercare after the first 2 sessions (no exercises
    # picked: no stretch), 2 reassessments, end-of-plan; and the welcome SMS
    assert enrolled["messages"] == 13 + 1
    return patient_id, plan_id


def local_times(patient_id: int, step: str) -> set[str]:
    timeline = engage("timeline", str(patient_id), "--json").json["messages"]
    return {
        datetime.fromisoformat(m["local_due_at"]).strftime("%H:%M")
        for m in timeline
        if m["step"] == step and m["status"] == "scheduled"
    }


def test_changing_quiet_hours_moves_the_pending_messages(db_url: str) -> None:
    clinic_id = make_clinic(**{"--timezone": "America/Phoenix"})
    patient_id, _ = early_patient_enrolled(clinic_id)
    # 24 h and 48 h before a 07:00 visit is 07:00, inside the default quiet hours: moved to 08:00.
    assert local_times(patient_id, "visit-reminder") == {"08:00"}
    assert local_times(patient_id, "what-to-expect") == {"08:00"}

    changed = engage("clinic", "quiet-hours", str(clinic_id), "--sms", "22:00-06:30", "--json").json
    # The 6 reminders (and the booking confirmation too when this runs in Phoenix's night).
    assert changed["changes"]["moved"] in (6, 7) and changed["changes"]["cancelled"] == 0
    assert local_times(patient_id, "visit-reminder") == {"07:00"}
    assert local_times(patient_id, "what-to-expect") == {"08:00"}  # email kept the default

    assert engage("clinic", "quiet-hours", str(clinic_id), "--email", "off", "--json").json["changes"]["moved"] == 1
    assert local_times(patient_id, "what-to-expect") == {"07:00"}

    back = engage("clinic", "quiet-hours", str(clinic_id), "--sms", "20:00-08:00", "--email", "20:00-08:00")
    # The same messages move back, and the email: 7, or 8 with the booking confirmation in Phoenix's night.
    moved_back = changed["changes"]["moved"] + 1
    assert back.code == 0 and f"{moved_back} pending messages moved" in back.stdout
    assert local_times(patient_id, "visit-reminder") == local_times(patient_id, "what-to-expect") == {"08:00"}
    with session_scope() as session:
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.action == "clinic.quiet_hours")).all()
    assert len(actions) == 3


def test_a_date_of_birth_from_the_shell_added_shown_changed_and_refused(db_url: str) -> None:
    clinic_id = make_clinic()
    patient_id = add_patient(clinic_id, "--phone", "(415) 555-0123", "--date-of-birth", "03/14/1980")
    shown = engage("patient", "show", str(patient_id), "--json").json
    assert shown["date_of_birth"] == "1980-03-14"
    assert "born 1980-03-14" in engage("patient", "show", str(patient_id)).stdout
    engage("patient", "update", str(patient_id), "--date-of-birth", "1980-03-15")
    assert "1980-03-15" in engage("patient", "list", "--clinic", str(clinic_id)).stdout
    refused = engage("patient", "update", str(patient_id), "--date-of-birth", "2999-01-01")
    assert refused.code != 0 and "a date of birth is between 1900 and today" in refused.stderr
