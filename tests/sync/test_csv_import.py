"""CSV import: validate every row first, upsert by external ids, re-import changes nothing, moves and cancels."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from engage.clock import utcnow
from engage.db import get_engine, session_scope
from engage.records.models import Appointment, Enrollment, Message, MessageStatus, Patient, TreatmentPlan
from engage.sync.csv_import import import_appointments
from engage.sync.records import MAX_ERRORS, SyncErrors
from tests.cli import engage

HEADER = (
    "patient_external_id,first_name,last_name,phone,email,locale,timezone,appointment_external_id,start,"
    "duration,status,sequence\n"
)
SEQUENCE = "dry-needling-sciatica"


def day(n: int, hour: int = 9) -> str:
    return (utcnow() + timedelta(days=n)).strftime(f"%Y-%m-%dT{hour:02d}:00")


def rows(*, second_start: str | None = None, second_status: str = "booked") -> str:
    return HEADER + "".join(
        [
            f"P1,Ana,Ruiz,(415) 555-0123,ana@example.com,es,,A1,{day(5)},45,booked,{SEQUENCE}\n",
            f"P1,Ana,Ruiz,(415) 555-0123,ana@example.com,es,,A2,{second_start or day(12)},45,{second_status},"
            f"{SEQUENCE}\n",
            f"P2,Bo,Lee,+14155550124,,en,America/Chicago,B1,{day(6, 10)},30m,booked,{SEQUENCE}\n",
        ]
    )


def run(clinic_id: int, text: str) -> dict:
    with session_scope() as session:
        return import_appointments(session, clinic_id, text, actor="test").as_dict()


def outbox() -> list[tuple]:
    with session_scope() as session:
        return [
            tuple(r)
            for r in session.execute(
                select(Message.id, Message.due_at, Message.status, Message.appointment_id).order_by(Message.id)
            )
        ]


def reminder(external_id: str) -> Message:
    with session_scope() as session:
        return session.scalars(
            select(Message)
            .join(Appointment, Appointment.id == Message.appointment_id)
            .where(Appointment.external_id == external_id, Message.step_key == "visit-reminder")
        ).one()


def test_import_creates_patients_plans_and_appointments_and_enrols_them(clinic_id: int) -> None:
    report = run(clinic_id, rows())

    assert (
        report["patients_created"],
        report["plans_created"],
        report["appointments_created"],
        report["enrollments_created"],
    ) == (2, 2, 3, 2)
    with session_scope() as session:
        ana = session.scalars(select(Patient).where(Patient.external_id == "P1")).one()
        assert (ana.phone, ana.locale, ana.email) == ("+14155550123", "es", "ana@example.com")
        plan = session.scalars(select(TreatmentPlan).where(TreatmentPlan.patient_id == ana.id)).one()
        assert plan.external_id == f"P1/{SEQUENCE}" and plan.planned_sessions == 2
        assert session.scalar(select(func.count()).select_from(Enrollment)) == 2
        bo_start = session.scalars(select(Appointment).where(Appointment.external_id == "B1")).one()
        assert bo_start.start_at.hour == 16 and bo_start.end_at - bo_start.start_at == timedelta(minutes=30)  # Chicago
    assert reminder("A2").status is MessageStatus.SCHEDULED


def test_reimporting_the_same_file_changes_nothing(clinic_id: int) -> None:
    text = rows()
    run(clinic_id, text)
    before = outbox()

    again = run(clinic_id, text)

    assert (again["patients_unchanged"], again["appointments_unchanged"]) == (2, 3)
    assert again["appointments_created"] == again["appointments_moved"] == again["patients_updated"] == 0
    assert sum(again["messages"].values()) - again["messages"]["unchanged"] == 0
    assert outbox() == before


def test_a_changed_time_moves_the_reminder(clinic_id: int) -> None:
    run(clinic_id, rows())
    before = reminder("A2")

    report = run(clinic_id, rows(second_start=day(14, 11)))

    after = reminder("A2")
    assert report["appointments_moved"] == 1 and report["appointments_unchanged"] == 2
    assert after.id == before.id and after.status is MessageStatus.SCHEDULED
    assert after.due_at - before.due_at == timedelta(days=2, hours=2)


def test_a_row_marked_cancelled_cancels_its_reminders(clinic_id: int) -> None:
    run(clinic_id, rows())

    report = run(clinic_id, rows(second_status="cancelled"))

    assert report["appointments_status_changed"] == 1
    cancelled = reminder("A2")
    assert cancelled.status is MessageStatus.CANCELLED and cancelled.status_reason == "appointment cancelled"
    assert reminder("A1").status is MessageStatus.SCHEDULED


def test_every_bad_row_is_reported_and_nothing_is_written(clinic_id: int) -> None:
    bad = HEADER + "".join(
        [
            f"P1,Ana,Ruiz,(415) 555-0123,,en,,A1,{day(5)},45,booked,{SEQUENCE}\n",
            f"P2,Bo,Lee,12,,en,,B1,{day(5)},45,booked,{SEQUENCE}\n",
            "P3,Cy,Day,+14155550125,,en,Mars/Base,C1,tomorrow,45,maybe,no-such-sequence\n",
            f"P1,Ana,Ruiz,(415) 555-0123,,en,,A1,{day(6)},45,booked,{SEQUENCE}\n",
        ]
    )
    with pytest.raises(SyncErrors) as caught, session_scope() as session:
        import_appointments(session, clinic_id, bad, actor="test")

    found = {(e.where, e.field) for e in caught.value.sync_errors}
    assert {
        ("line 3", "phone"),
        ("line 4", "timezone"),
        ("line 4", "status"),
        ("line 5", "appointment_external_id"),
    } <= found
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 0


@pytest.mark.parametrize(
    ("row", "field"),
    [
        pytest.param("P{n},,,,,,,A{n},,²,,\n", "first_name", id="unreadable rows"),
        pytest.param("Q{n},Bo,Lee,12,,en,,B{n},{start},45,booked,\n", "phone", id="rows that fail validation"),
    ],
)
def test_a_file_of_bad_rows_lists_the_first_hundred_errors_and_says_checking_stopped(
    clinic_id: int, row: str, field: str
) -> None:
    # Checking stops at MAX_ERRORS, so a large file of bad rows is answered at once (tests/bench/bench_attacks).
    text = HEADER + "".join(row.format(n=n, start=day(5)) for n in range(20_000))
    with pytest.raises(SyncErrors) as caught, session_scope() as session:
        import_appointments(session, clinic_id, text, actor="test")

    errors = caught.value.sync_errors
    assert len(errors) == MAX_ERRORS + 1
    assert (errors[0].where, errors[0].field) == ("line 2", field)
    assert errors[-1].where.startswith("after line ") and "checking stopped after 100 errors" in errors[-1].message
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 0


def test_a_file_of_rows_failing_validation_stops_before_looking_up_the_rest(clinic_id: int) -> None:
    # Looking up every external id of a 5 MB file took seconds; an import with errors writes nothing, and
    # the errors it reports are the first hundred: the ids after them are not looked up.
    text = HEADER + "".join(f"Q{n},Bo,Lee,12,,en,,B{n},{day(5)},45,booked,\n" for n in range(20_000))
    lookups: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        words = statement.split()
        if "external_id" in statement and "IN" in words:
            lookups.append(words[words.index("FROM") + 1])

    sa_event.listen(get_engine(), "before_cursor_execute", record)
    try:
        with pytest.raises(SyncErrors) as caught, session_scope() as session:
            import_appointments(session, clinic_id, text, actor="test")
    finally:
        sa_event.remove(get_engine(), "before_cursor_execute", record)

    assert len(caught.value.sync_errors) == MAX_ERRORS + 1
    assert lookups == ["patient"]  # the first chunk of 1,000 patients, where the hundred errors are


def test_a_duration_in_other_digits_is_reported_as_not_a_duration(clinic_id: int) -> None:
    # "²".isdigit() is true, and int("²") raises: the row is reported, not a server error.
    with pytest.raises(SyncErrors) as caught, session_scope() as session:
        import_appointments(
            session, clinic_id, HEADER + f"P1,Ana,Ruiz,+14155550123,,en,,A1,{day(5)},²,booked,\n", actor="test"
        )

    [error] = caught.value.sync_errors
    assert (error.where, error.field) == ("line 2", "duration") and "not a duration" in error.message


def test_a_text_that_is_not_csv_is_refused_with_its_line_and_nothing_is_written(clinic_id: int) -> None:
    unclosed = HEADER + f'P1,"Ana,Ruiz,(415) 555-0123,,en,,A1,{day(5)},45,booked,{SEQUENCE}\n' + "x" * 140_000

    with pytest.raises(SyncErrors) as caught, session_scope() as session:
        import_appointments(session, clinic_id, unclosed, actor="test")

    [error] = caught.value.sync_errors
    assert error.where == "line 2" and error.message.startswith("not readable as CSV: field larger than field limit")
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 0


def test_cli_lists_each_bad_row_and_a_dry_run_writes_nothing(clinic_id: int, db_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        HEADER + f"P1,Ana,Ruiz,555,,en,,A1,{day(5)},45,booked,{SEQUENCE}\n"
        f"P2,Bo,Lee,+14155550124,,en,,B1,{day(5)},ninety,booked,{SEQUENCE}\n"
    )
    good = tmp_path / "good.csv"
    good.write_text(rows())

    refused = engage("import", "appointments", str(bad), "--clinic", str(clinic_id))
    dry = engage("import", "appointments", str(good), "--clinic", str(clinic_id), "--dry-run", "--json")
    with session_scope() as session:
        written_after_dry_run = session.scalar(select(func.count()).select_from(Appointment))
    real = engage("import", "appointments", str(good), "--clinic", str(clinic_id), "--json")

    assert refused.code == 2
    assert "line 2: phone:" in refused.stderr and "line 3: duration:" in refused.stderr
    assert dry.json["appointments_created"] == 3 and dry.json["dry_run"] is True
    assert written_after_dry_run == 0
    assert real.json["appointments_created"] == 3


def test_a_date_of_birth_column_is_read_checked_and_kept_when_a_later_file_has_none(
    db_url: str, clinic_id: int
) -> None:
    header = "patient_external_id,first_name,last_name,phone,date_of_birth,appointment_external_id,start,sequence\n"
    with pytest.raises(SyncErrors) as caught, session_scope() as session:
        import_appointments(
            session, clinic_id, header + f"P1,John,Smith,+12125550142,14/03/1980,J1,{day(5)},{SEQUENCE}\n", actor="t"
        )
    assert [(e.where, e.field, e.message) for e in caught.value.sync_errors] == [
        ("line 2", "date_of_birth", "'14/03/1980' is not a date: write it as YYYY-MM-DD or MM/DD/YYYY")
    ]
    run(clinic_id, header + f"P1,John,Smith,+12125550142,03/14/1980,J1,{day(5)},{SEQUENCE}\n")
    again = run(clinic_id, HEADER + f"P1,John,Smith,+12125550142,,en,,J1,{day(5)},45,booked,{SEQUENCE}\n")
    assert again["patients_unchanged"] == 1  # no such column: the date engage has is kept
    with session_scope() as session:
        john = session.scalars(select(Patient).where(Patient.external_id == "P1")).one()
        assert john.date_of_birth is not None and john.date_of_birth.isoformat() == "1980-03-14"
