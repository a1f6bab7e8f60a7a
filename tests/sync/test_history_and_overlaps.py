"""What a sync does with a visit in the past (history: recorded, nothing reminds of it) and with two booked
visits of one patient at the same time (a bad row naming the other visit; nothing written)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engage.db import session_scope
from engage.records.models import Appointment, AppointmentStatus, Message, MessageStatus, Patient
from engage.sync.csv_import import import_appointments
from engage.sync.records import SyncErrors
from tests.sync.test_csv_import import HEADER, SEQUENCE, day, run

PRE_VISIT = ("booking-confirmation", "what-to-expect", "visit-reminder")


def row(appointment: str, start: str, *, status: str = "booked", patient: str = "P1", minutes: int = 45) -> str:
    names = {"P1": "Ana,Ruiz,(415) 555-0123", "P2": "Bo,Lee,+14155550124"}[patient]
    return f"{patient},{names},,en,,{appointment},{start},{minutes},{status},{SEQUENCE}\n"


def messages_of(external_id: str) -> list[Message]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(Message)
                .join(Appointment, Appointment.id == Message.appointment_id)
                .where(Appointment.external_id == external_id)
            )
        )


def refused(clinic_id: int, text: str) -> list[tuple[str, str | None, str]]:
    with pytest.raises(SyncErrors) as caught, session_scope() as session:
        import_appointments(session, clinic_id, text, actor="test")
    return [(e.where, e.field, e.message) for e in caught.value.sync_errors]


def appointment_count() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Appointment)) or 0


def test_a_visit_in_the_past_is_recorded_as_history_and_nothing_reminds_of_it(clinic_id: int) -> None:
    report = run(clinic_id, HEADER + row("OLD", day(-10)) + row("NEXT", day(5)))

    assert report["appointments_created"] == 2 and report["enrollments_created"] == 1
    old = messages_of("OLD")
    assert old and {m.status for m in old} == {MessageStatus.SKIPPED}, "history: every message of it is skipped"
    assert not [m for m in old if m.step_key == "booking-confirmation"]
    [confirmation] = [m for m in messages_of("NEXT") if m.step_key == "booking-confirmation"]
    assert confirmation.status is MessageStatus.SCHEDULED and confirmation.context["booked_count"] == 1

    # A later sync brings in another past visit (the plan is enrolled by now): it is not "booked" news either.
    later = run(clinic_id, HEADER + row("OLD", day(-10)) + row("NEXT", day(5)) + row("OLDER", day(-20)))

    assert later["appointments_created"] == 1
    older = messages_of("OLDER")
    assert not [m for m in older if m.step_key == "booking-confirmation"]
    assert not [m for m in older if m.status is MessageStatus.SCHEDULED]


def test_a_sync_may_move_a_visit_into_the_past_and_its_reminders_are_skipped(clinic_id: int) -> None:
    run(clinic_id, HEADER + row("A1", day(5)) + row("A2", day(12)))

    report = run(clinic_id, HEADER + row("A1", day(-1)) + row("A2", day(12)))

    assert report["appointments_moved"] == 1
    pending = [m for m in messages_of("A1") if m.step_key in PRE_VISIT and m.status is MessageStatus.SCHEDULED]
    assert pending == []


def test_two_visits_of_a_patient_at_once_in_one_file_are_a_bad_row_naming_the_other(clinic_id: int) -> None:
    errors = refused(
        clinic_id,
        HEADER + row("A1", day(5)) + row("B1", day(5), patient="P2") + row("A2", day(5).replace("T09:00", "T09:30")),
    )

    [(where, field, message)] = errors
    assert (where, field) == ("line 4", "start")
    assert "appointment A2 overlaps appointment A1 of the same patient (line 2, " in message
    assert appointment_count() == 0


def test_a_new_visit_over_one_already_booked_in_engage_is_refused_naming_it(clinic_id: int) -> None:
    run(clinic_id, HEADER + row("A1", day(5)))

    errors = refused(clinic_id, HEADER + row("A9", day(5).replace("T09:00", "T08:30")))  # a file of news only
    again = refused(clinic_id, HEADER + row("A1", day(5)) + row("A9", day(5).replace("T09:00", "T08:30")))
    past = refused(clinic_id, HEADER + row("A1", day(5)) + row("X1", day(-3)) + row("X2", day(-3), minutes=20))

    assert [(w, f) for w, f, _ in errors] == [("line 2", "start")]
    assert "appointment A9 overlaps appointment A1 of the same patient (booked in engage, " in errors[0][2]
    assert "appointment A9 overlaps appointment A1 of the same patient (line 2, " in again[0][2]
    assert [(w, f) for w, f, _ in past] == [("line 4", "start")], "history may not double-book either"
    assert appointment_count() == 1


def test_a_sync_that_swaps_two_visits_or_rebooks_a_cancelled_slot_is_fine(clinic_id: int) -> None:
    run(clinic_id, HEADER + row("A1", day(5)) + row("A2", day(12)))

    swapped = run(clinic_id, HEADER + row("A1", day(12)) + row("A2", day(5)))
    rebooked = run(clinic_id, HEADER + row("A1", day(12), status="cancelled") + row("A2", day(5)) + row("A3", day(12)))

    assert swapped["appointments_moved"] == 2
    assert (rebooked["appointments_status_changed"], rebooked["appointments_created"]) == (1, 1)
    with session_scope() as session:
        booked = (
            session.execute(
                select(Appointment.external_id)
                .where(Appointment.status == AppointmentStatus.BOOKED)
                .order_by(Appointment.start_at)
            )
            .scalars()
            .all()
        )
        assert booked == ["A2", "A3"]
        assert session.scalar(select(func.count()).select_from(Patient)) == 1


def test_a_cancelled_visit_the_practice_books_again_is_a_change_like_a_move(clinic_id: int) -> None:
    run(clinic_id, HEADER + row("A1", day(5)) + row("A2", day(12)))
    run(clinic_id, HEADER + row("A1", day(5)) + row("A2", day(12), status="cancelled"))
    assert not [m for m in messages_of("A2") if m.status is MessageStatus.SCHEDULED]

    report = run(clinic_id, HEADER + row("A1", day(5)) + row("A2", day(13)) + row("A3", day(19)))

    assert report["appointments_status_changed"] == 1 and report["appointments_moved"] == 1
    assert report["appointments_created"] == 1, "the rest of the nightly file is applied with it"
    with session_scope() as session:
        a2 = session.scalars(select(Appointment).where(Appointment.external_id == "A2")).one()
        assert a2.status is AppointmentStatus.BOOKED
    reminders = [m for m in messages_of("A2") if m.step_key == "visit-reminder" and m.status is MessageStatus.SCHEDULED]
    assert len(reminders) == 1 and reminders[0].due_at < a2.start_at
