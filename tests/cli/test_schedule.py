"""``engage enroll``, ``engage enrollment …`` and ``engage timeline`` end to end (real CLI, both backends)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from engage.clock import utcnow
from engage.db import session_scope
from engage.records import clinics, patients, plans
from engage.records.models import AppointmentStatus, Enrollment, Message, MessageStatus
from tests.cli import engage

NY = ZoneInfo("America/New_York")


def seed(phone: str | None = "+12025550123") -> tuple[int, int, list[int]]:
    """A clinic, a patient and a six-session weekly plan starting ten days from now at 09:00 New York."""
    first = (utcnow().astimezone(NY) + timedelta(days=10)).replace(hour=9, minute=0, second=0, microsecond=0)
    with session_scope() as session:
        clinic = clinics.create_clinic(
            session,
            name="Back in Motion",
            timezone="America/New_York",
            address="12 Elm St, Springfield, IL 62701",
            email="front@backinmotion.example",
            actor="test",
        )
        patient = patients.add_patient(
            session,
            clinic_id=clinic.id,
            first_name="Ana",
            last_name="Ruiz",
            email="ana@example.com",
            phone=phone,
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
        return patient.id, plan.id, [a.id for a in plan.appointments]


def messages_by_status(enrollment_id: int) -> dict[str, int]:
    with session_scope() as session:
        found = session.execute(
            select(Message.status, func.count()).where(Message.enrollment_id == enrollment_id).group_by(Message.status)
        )
        return {status.value: n for status, n in found}


def test_enroll_then_timeline_shows_every_message_in_local_time(db_url: str) -> None:
    patient_id, plan_id, appointments = seed()
    enrolled = engage(
        "enroll", "--patient", str(patient_id), "--plan", str(plan_id), "--sequence", "dry-needling-sciatica", "--json"
    ).json
    # 1 booking confirmation, 1 what-to-expect, 6 reminders, aftercare after the first 2 sessions (no exercises
    # picked: no stretch), 2 reassessments, the end-of-plan email; and the welcome SMS (the patient's first
    # enrollment with texts).
    assert enrolled["messages"] == 13 + 1
    statuses = messages_by_status(enrolled["id"])
    assert set(statuses) <= {"scheduled", "skipped"} and sum(statuses.values()) == 13 + 1

    timeline = engage("timeline", str(patient_id), "--json").json["messages"]
    assert len(timeline) == 13 + 1
    [welcome] = [m for m in timeline if m["step"] == "welcome"]
    assert (welcome["channel"], welcome["template"], welcome["status"]) == ("sms", "welcome", "scheduled")
    # The frequency caps show before anything is sent: which texts will not go, and why.
    capped = [m for m in timeline if m["status"] == "skipped"]
    assert {(m["channel"], m["reason"]) for m in capped} <= {("sms", "frequency cap")}
    assert len(capped) == statuses.get("skipped", 0) and "visit-reminder" not in {m["step"] for m in capped}
    assert [m["due_at"] for m in timeline] == sorted(m["due_at"] for m in timeline)
    timeline = [m for m in timeline if m["step"] != "welcome"]  # due at enrolment: before or beside the rest
    assert timeline[0]["step"] == "booking-confirmation"
    first = timeline[1]
    assert (first["step"], first["channel"], first["template"], first["status"], first["appointment_id"]) == (
        "what-to-expect",
        "email",
        "what-to-expect",
        "scheduled",
        appointments[0],
    )
    due = datetime.fromisoformat(first["due_at"])
    local = datetime.fromisoformat(first["local_due_at"])
    assert due.utcoffset() == timedelta(0) and local == due
    assert local.utcoffset() == due.astimezone(NY).utcoffset() and local.hour == 9  # 48 h before a 09:00 session
    prompts = [m for m in timeline if m["step"] in ("reassessment", "final-reassessment")]
    assert {datetime.fromisoformat(m["local_due_at"]).strftime("%H:%M") for m in prompts} == {"10:00"}

    table = engage("timeline", str(patient_id))
    assert table.code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["id", "due", "(local)", "step", "channel", "status", "appt", "reason"]
    lines = [line for line in lines if " welcome " not in line]
    assert len(lines) == 2 + 13 and "what-to-expect" in lines[3] and " 09:00 -0" in lines[3]


def test_moving_an_appointment_from_the_cli_moves_its_reminder(db_url: str) -> None:
    patient_id, plan_id, appointments = seed()
    assert engage(
        "enroll", "--patient", str(patient_id), "--plan", str(plan_id), "--sequence", "dry-needling-sciatica", "--json"
    ).json
    before = {
        (m["step"], m["appointment_id"]): m for m in engage("timeline", str(patient_id), "--json").json["messages"]
    }
    reminder = before[("visit-reminder", appointments[1])]
    new_start = datetime.fromisoformat(reminder["due_at"]) + timedelta(days=2)  # the session two days later
    assert engage("appointment", "move", str(appointments[1]), "--to", new_start.isoformat(), "--json").json
    after = {
        (m["step"], m["appointment_id"]): m for m in engage("timeline", str(patient_id), "--json").json["messages"]
    }
    moved = after[("visit-reminder", appointments[1])]
    assert moved["id"] == reminder["id"] and moved["status"] == "scheduled"
    assert datetime.fromisoformat(moved["due_at"]) == new_start - timedelta(hours=24)


def test_pause_resume_cancel_from_the_cli(db_url: str) -> None:
    patient_id, plan_id, _ = seed(phone=None)
    enrolled = engage(
        "enroll", "--patient", str(patient_id), "--plan", str(plan_id), "--sequence", "dry-needling-sciatica", "--json"
    ).json
    # No phone: SMS skipped; what-to-expect, aftercare and the two reassessments (by email instead) and
    # end-of-plan kept.
    assert messages_by_status(enrolled["id"]) == {"scheduled": 6, "skipped": 7}

    paused = engage("enrollment", "pause", str(enrolled["id"]), "--json").json
    assert (paused["status"], paused["changes"]["cancelled"]) == ("paused", 6)
    resumed = engage("enrollment", "resume", str(enrolled["id"]), "--json").json
    assert (resumed["status"], resumed["changes"]["revived"]) == ("active", 6)
    cancelled = engage("enrollment", "cancel", str(enrolled["id"]))
    assert cancelled.code == 0 and "is cancelled" in cancelled.stdout
    assert messages_by_status(enrolled["id"]) == {"cancelled": 6, "skipped": 7}
    with session_scope() as session:
        assert session.get_one(Enrollment, enrolled["id"]).status.value == "cancelled"


def test_cli_errors_are_clear_and_write_nothing(db_url: str) -> None:
    patient_id, plan_id, _ = seed()
    unknown = engage("enroll", "--patient", str(patient_id), "--plan", str(plan_id), "--sequence", "nope", "--json")
    assert unknown.code == 2 and unknown.stdout == ""
    assert "no sequence 'nope' (known: dry-needling-sciatica" in unknown.stderr
    other_patient, _, _ = seed()
    mismatch = engage(
        "enroll", "--patient", str(other_patient), "--plan", str(plan_id), "--sequence", "dry-needling-sciatica"
    )
    assert mismatch.code == 2 and f"no treatment plan with id {plan_id}" in mismatch.stderr  # another clinic's
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Enrollment)) == 0
        assert session.scalar(select(func.count()).select_from(Message)) == 0
    assert engage("enrollment", "pause", "999").code == 2
    missing = engage("timeline", "999", "--json")
    assert missing.code == 2 and "no patient with id 999" in missing.stderr


def test_cancelled_appointment_from_the_cli_cancels_its_messages(db_url: str) -> None:
    patient_id, plan_id, appointments = seed()
    enrolled = engage(
        "enroll", "--patient", str(patient_id), "--plan", str(plan_id), "--sequence", "dry-needling-sciatica", "--json"
    ).json
    assert engage("appointment", "cancel", str(appointments[-1]), "--json").json
    timeline = engage("timeline", str(patient_id), "--json").json["messages"]
    last = [m for m in timeline if m["appointment_id"] == appointments[-1]]
    assert last and {(m["status"], m["reason"]) for m in last} == {("cancelled", "appointment cancelled")}
    # The final reassessment passes to the session that is now the last one.
    scheduled = [(m["step"], m["appointment_id"]) for m in timeline if m["status"] == "scheduled"]
    assert [a for step, a in scheduled if step == "reassessment"] == [appointments[2]]
    assert [a for step, a in scheduled if step == "final-reassessment"] == [appointments[4]]
    with session_scope() as session:
        assert session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.enrollment_id == enrolled["id"], Message.status == MessageStatus.CANCELLED)
        ) == len(last)
        assert {a.status for a in session.get_one(Enrollment, enrolled["id"]).plan.appointments} == {
            AppointmentStatus.BOOKED,
            AppointmentStatus.CANCELLED,
        }
