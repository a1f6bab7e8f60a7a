"""External-id upserts: PUT twice changes nothing; a new time moves the reminder; cancelled cancels it."""

from __future__ import annotations

from datetime import datetime, timedelta

from engage.clock import utcnow
from tests.web.api.conftest import World

SEQUENCE = "dry-needling-sciatica"
ANA = {"first_name": "Ana", "last_name": "Ortiz", "phone": "415 555 0160", "locale": "es"}


def visit(days: int, hour: int = 9) -> str:
    return (utcnow() + timedelta(days=days)).strftime(f"%Y-%m-%dT{hour:02d}:00")


def reminder(api, patient_id: int, appointment_id: int) -> dict:  # type: ignore[no-untyped-def]
    [row] = [
        r
        for r in api.get(f"/patients/{patient_id}/timeline").json()
        if r["appointment_id"] == appointment_id and r["step"] == "visit-reminder"
    ]
    return row


def test_put_patient_creates_then_leaves_alone_then_updates(world: World) -> None:
    with world.client() as api:
        created = api.put("/patients/by-external-id/PMS-1", json=ANA)
        same = api.put("/patients/by-external-id/PMS-1", json=ANA)
        changed = api.put("/patients/by-external-id/PMS-1", json={**ANA, "phone": "+1 415 555 0161"})
        other_clinic = api.put(
            "/patients/by-external-id/PMS-1", json=ANA, headers={"Authorization": f"Bearer {world.b.token}"}
        )

    assert created.status_code == 201 and same.status_code == 200 and changed.status_code == 200
    assert created.json()["id"] == same.json()["id"] == changed.json()["id"]
    assert created.json()["external_id"] == "PMS-1" and changed.json()["phone"] == "+14155550161"
    assert other_clinic.status_code == 201 and other_clinic.json()["id"] != created.json()["id"]


def test_put_appointment_books_moves_and_cancels_with_its_reminder(world: World) -> None:
    body = {"patient_external_id": "PMS-1", "sequence": SEQUENCE, "start": visit(8), "duration": "45m"}
    with world.client() as api:
        patient_id = api.put("/patients/by-external-id/PMS-1", json=ANA).json()["id"]
        booked = api.put("/appointments/by-external-id/V-1", json=body)
        appointment_id = booked.json()["id"]
        first = reminder(api, patient_id, appointment_id)
        timeline_before = api.get(f"/patients/{patient_id}/timeline").json()
        again = api.put("/appointments/by-external-id/V-1", json=body)
        timeline_again = api.get(f"/patients/{patient_id}/timeline").json()
        moved = api.put("/appointments/by-external-id/V-1", json={**body, "start": visit(9, 11)})
        after_move = reminder(api, patient_id, appointment_id)
        cancelled = api.put(
            "/appointments/by-external-id/V-1", json={**body, "start": visit(9, 11), "status": "cancelled"}
        )
        after_cancel = reminder(api, patient_id, appointment_id)

    assert booked.status_code == 201, booked.text
    assert first["status"] == "scheduled"
    assert again.status_code == 200 and again.json() == booked.json() and timeline_again == timeline_before
    assert moved.json()["id"] == appointment_id and after_move["id"] == first["id"]
    assert datetime.fromisoformat(after_move["due_at"]) - datetime.fromisoformat(first["due_at"]) == timedelta(
        days=1, hours=2
    )
    assert cancelled.json()["status"] == "cancelled"
    assert after_cancel["status"] == "cancelled" and after_cancel["reason"] == "appointment cancelled"


def test_put_appointment_for_an_unknown_patient_points_at_the_field(world: World) -> None:
    with world.client() as api:
        answer = api.put(
            "/appointments/by-external-id/V-9",
            json={"patient_external_id": "nobody", "start": visit(3), "sequence": SEQUENCE},
        )
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["pointer"] == "#/patient_external_id"


def test_put_appointment_records_a_past_visit_without_reminders_and_refuses_a_double_booking(world: World) -> None:
    body = {"patient_external_id": "PMS-1", "sequence": SEQUENCE, "duration": "45m"}
    with world.client() as api:
        patient_id = api.put("/patients/by-external-id/PMS-1", json=ANA).json()["id"]
        ahead = api.put("/appointments/by-external-id/V-1", json={**body, "start": visit(8)})
        history = api.put("/appointments/by-external-id/V-0", json={**body, "start": visit(-9)})
        clash = api.put("/appointments/by-external-id/V-2", json={**body, "start": visit(8, 8).replace(":00", ":30")})
        timeline = api.get(f"/patients/{patient_id}/timeline").json()
        plans = api.get(f"/patients/{patient_id}").json()["plans"]

    assert ahead.status_code == history.status_code == 201, history.text
    of_history = [r for r in timeline if r["appointment_id"] == history.json()["id"]]
    assert of_history and {r["status"] for r in of_history} == {"skipped"}
    assert [r["appointment_id"] for r in timeline if r["step"] == "booking-confirmation"] == [ahead.json()["id"]]
    assert clash.status_code == 422 and clash.headers["content-type"] == "application/problem+json"
    [error] = clash.json()["errors"]
    assert (
        error["pointer"] == "#/start"
        and "overlaps appointment V-1 of the same patient (booked in engage" in error["detail"]
    )
    assert sorted(a["external_id"] for p in plans for a in p["appointments"]) == ["V-0", "V-1"]
