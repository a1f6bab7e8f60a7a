"""FHIR R4 Bundles through the API: Synthea- and HAPI-shaped fixtures, twice with no change, moves and cancels."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from engage.clock import utcnow
from tests.web.api.conftest import World

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fhir"
SEQUENCE = "dry-needling-sciatica"


def load(name: str, **values: str) -> dict[str, Any]:
    text = (FIXTURES / name).read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return {k: v for k, v in json.loads(text).items() if k != "_comment"}


def at(days: int, hour: int) -> str:
    return (utcnow() + timedelta(days=days)).strftime(f"%Y-%m-%dT{hour:02d}:00:00-05:00")


TIMES = {"first_start": at(6, 9), "first_end": at(6, 10), "second_start": at(7, 14)}


def reminders(api: Any) -> dict[int, dict[str, Any]]:
    patients = api.get("/patients", params={"limit": 200}).json()["items"]
    rows = [r for p in patients for r in api.get(f"/patients/{p['id']}/timeline").json()]
    return {r["appointment_id"]: r for r in rows if r["step"] == "visit-reminder"}


def test_synthea_transaction_bundle_creates_then_changes_nothing_the_second_time(world: World) -> None:
    bundle = load("synthea_transaction.json", **TIMES)
    with world.client() as api:
        first = api.post("/fhir", params={"sequence": SEQUENCE}, json=bundle)
        before = reminders(api)
        second = api.post("/fhir", params={"sequence": SEQUENCE}, json=bundle)
        after = reminders(api)
        maria = api.get(first.json()["entry"][0]["response"]["location"].replace("Patient/", "/patients/")).json()

    assert first.status_code == 200, first.text
    assert first.json()["type"] == "transaction-response"
    assert [e["response"]["status"] for e in first.json()["entry"]] == ["201 Created"] * 4
    assert [e["response"]["status"] for e in second.json()["entry"]] == ["200 OK"] * 4
    assert [e["response"]["location"] for e in second.json()["entry"]] == [
        e["response"]["location"] for e in first.json()["entry"]
    ]
    assert after == before and {r["status"] for r in before.values()} == {"scheduled"}
    assert (maria["external_id"], maria["first_name"], maria["last_name"]) == ("MRN-55021", "María", "Hernández")
    assert (maria["phone"], maria["email"], maria["locale"]) == ("+14155550142", "maria.hernandez@example.org", "es")
    assert maria["date_of_birth"] == "1971-03-09"  # Patient.birthDate
    [appointment] = maria["plans"][0]["appointments"]
    assert appointment["external_id"] == "APT-9001"


def test_hapi_collection_moves_and_then_cancels_the_reminder(world: World) -> None:
    with world.client() as api:
        api.post("/fhir", params={"sequence": SEQUENCE}, json=load("synthea_transaction.json", **TIMES))
        [(appointment_id, booked)] = [(k, v) for k, v in reminders(api).items() if v["status"] == "scheduled"][:1]
        moved_times = {**TIMES, "first_start": at(8, 11), "first_end": at(8, 12)}
        moved = api.post("/fhir", json=load("hapi_collection.json", status="booked", **moved_times))
        after_move = reminders(api)
        cancelled = api.post("/fhir", json=load("hapi_collection.json", status="cancelled", **moved_times))
        after_cancel = reminders(api)

    assert moved.status_code == cancelled.status_code == 200, moved.text
    moved_row = after_move[appointment_id]
    assert moved_row["id"] == booked["id"] and moved_row["due_at"] != booked["due_at"]
    assert moved_row["status"] == "scheduled"
    assert after_cancel[appointment_id]["status"] == "cancelled"
    assert after_cancel[appointment_id]["reason"] == "appointment cancelled"


def test_an_invalid_bundle_points_at_each_bad_path_and_writes_nothing(world: World) -> None:
    bundle = load("synthea_transaction.json", **{**TIMES, "second_start": "next tuesday"})
    bundle["entry"].append({"resource": {"resourceType": "Observation", "status": "final"}})
    with world.client() as api:
        wrong_kind = api.post("/fhir", json=bundle)
        bundle["entry"].pop()
        bad_time = api.post("/fhir", json=bundle)
        patients = api.get("/patients", params={"q": "Hernández"}).json()["items"]

    assert wrong_kind.status_code == 422
    assert [e["pointer"] for e in wrong_kind.json()["errors"]] == ["#/entry/4/resource/resourceType"]
    assert bad_time.status_code == 422
    assert [e["pointer"] for e in bad_time.json()["errors"]] == ["#/entry/3/resource/start"]
    assert patients == []


def test_a_bundle_booking_one_patient_twice_at_once_points_at_the_later_entry(world: World) -> None:
    overlapping = {**TIMES, "second_start": TIMES["first_start"].replace("T09:00", "T09:30")}
    bundle = load("synthea_transaction.json", **overlapping)
    bundle["entry"][3]["resource"]["participant"][0]["actor"]["reference"] = bundle["entry"][0]["fullUrl"]
    with world.client() as api:
        answer = api.post("/fhir", params={"sequence": SEQUENCE}, json=bundle)
        patients = api.get("/patients", params={"q": "Hernández"}).json()["items"]

    assert answer.status_code == 422, answer.text
    [error] = answer.json()["errors"]
    assert error["pointer"] == "#/entry/3/resource/start"
    assert "overlaps appointment APT-9001 of the same patient (entry/2, " in error["detail"]
    assert patients == []
