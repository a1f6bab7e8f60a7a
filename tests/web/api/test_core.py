"""The API's contract: tokens, clinic scoping, problem+json errors, idempotency, the docs."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from engage.db import session_scope
from engage.records.models import ApiToken, AuditEvent, IdempotencyKey, Patient, Role
from tests.cli import engage
from tests.web.api.conftest import World, make_clinic

NEW_PATIENT = {"first_name": "Luis", "last_name": "Gómez", "phone": "(415) 555-0177", "locale": "es"}


def count(model: type) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_openapi_document_and_docs_page_are_served(world: World) -> None:
    spec = httpx.get(world.base + "/api/openapi.json").json()
    docs = httpx.get(world.base + "/api/docs")

    assert "/v1/patients" in spec["paths"] and "/v1/appointments/{appointment_id}" in spec["paths"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert docs.status_code == 200 and "/api/openapi.json" in docs.text


def test_request_without_a_token_is_401_problem_json(world: World) -> None:
    answer = httpx.get(f"{world.base}/api/v1/patients/{world.a.patient_id}")

    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.json()["status"] == 401


def test_token_made_on_the_cli_works_until_revoked_on_the_cli(world: World) -> None:
    made = engage(
        "token",
        "create",
        "--staff",
        world.a.staff_email,
        "--label",
        "PMS sync",
        "--json",
        env={"ENGAGE_DATABASE_URL": world_db()},
    ).json
    with world.client(token=made["token"]) as api:
        assert api.get(f"/patients/{world.a.patient_id}").status_code == 200
        with session_scope() as session:  # only a hash is stored
            stored = session.get_one(ApiToken, made["id"])
            assert stored.token_hash != made["token"] and made["token"] not in stored.token_hash

        listed = engage("token", "list", "--json", env={"ENGAGE_DATABASE_URL": world_db()}).json["tokens"]
        assert any(t["id"] == made["id"] and t["label"] == "PMS sync" and "token" not in t for t in listed)
        revoked = engage("token", "revoke", str(made["id"]), "--json", env={"ENGAGE_DATABASE_URL": world_db()}).json
        assert revoked["revoked_at"] is not None

        answer = api.get(f"/patients/{world.a.patient_id}")
    assert answer.status_code == 401
    assert "revoked" in answer.json()["detail"]


def test_unknown_staff_email_is_a_clean_cli_error(world: World) -> None:
    result = engage("token", "create", "--staff", "nobody@x.example", env={"ENGAGE_DATABASE_URL": world_db()})
    assert result.code == 2 and result.stderr.startswith("error: no active staff user")


def test_records_of_another_clinic_are_404_as_if_missing(world: World) -> None:
    b = world.b
    with world.client(world.a) as api:
        answers = [
            api.get(f"/patients/{b.patient_id}"),
            api.get(f"/patients/{b.patient_id}/timeline"),
            api.get(f"/patients/{b.patient_id}/outcomes"),
            api.get(f"/plans/{b.plan_id}"),
            api.patch(f"/appointments/{b.appointment_ids[0]}", json={"status": "cancelled"}),
            api.post("/appointments", json={"plan_id": b.plan_id, "start": "2027-01-05T09:00"}),
            api.post(
                "/enrollments",
                json={"patient_id": b.patient_id, "plan_id": b.plan_id, "sequence": "dry-needling-sciatica"},
            ),
            api.get(f"/patients/{b.patient_id + 1000}"),
        ]
    assert [a.status_code for a in answers] == [404] * len(answers)
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers)
    with world.client(world.b) as api:
        assert api.get(f"/plans/{b.plan_id}").json()["appointments"][0]["status"] == "booked"


def test_a_new_patient_is_created_and_read_back(world: World) -> None:
    with world.client() as api:
        created = api.post("/patients", json={**NEW_PATIENT, "external_id": "PMS-77"})
        read = api.get(f"/patients/{created.json()['id']}")

    assert created.status_code == 201
    body = read.json()
    assert body["phone"] == "+14155550177" and body["locale"] == "es" and body["external_id"] == "PMS-77"
    assert body["timezone"] == "America/New_York" and body["plans"] == []


def test_invalid_fields_each_get_an_entry_and_nothing_is_written(world: World) -> None:
    before = count(Patient), count(AuditEvent)
    with world.client() as api:
        answer = api.post("/patients", json={"first_name": "", "locale": 5, "shoe_size": 44})

    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    pointers = sorted(e["pointer"] for e in answer.json()["errors"])
    assert pointers == ["#/first_name", "#/last_name", "#/locale", "#/shoe_size"]
    assert (count(Patient), count(AuditEvent)) == before


def test_a_rule_broken_in_the_library_is_a_problem_and_writes_nothing(world: World) -> None:
    before = count(Patient)
    with world.client() as api:
        answer = api.post("/patients", json={**NEW_PATIENT, "phone": "555", "timezone": "Mars/Olympus"})

    assert answer.status_code == 422
    assert sorted(e["pointer"] for e in answer.json()["errors"]) == ["#/phone", "#/timezone"]
    assert count(Patient) == before


def test_duplicate_external_id_points_at_the_field(world: World) -> None:
    with world.client() as api:
        assert api.post("/patients", json={**NEW_PATIENT, "external_id": "X1"}).status_code == 201
        again = api.post("/patients", json={**NEW_PATIENT, "phone": None, "email": "l@x.example", "external_id": "X1"})
    assert again.status_code == 422
    assert again.json()["errors"] == [{"pointer": "#/external_id", "detail": again.json()["detail"]}]


def test_same_idempotency_key_and_body_answers_the_first_response_and_creates_nothing(world: World) -> None:
    with world.client() as api:
        first = api.post("/patients", json=NEW_PATIENT, headers={"Idempotency-Key": "k-1"})
        patients_after_first = count(Patient)
        again = api.post("/patients", json=dict(reversed(NEW_PATIENT.items())), headers={"Idempotency-Key": "k-1"})

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert count(Patient) == patients_after_first
    assert count(IdempotencyKey) == 1


def test_same_idempotency_key_with_another_body_is_refused(world: World) -> None:
    with world.client() as api:
        api.post("/patients", json=NEW_PATIENT, headers={"Idempotency-Key": "k-2"})
        before = count(Patient)
        other = api.post("/patients", json={**NEW_PATIENT, "first_name": "Lucía"}, headers={"Idempotency-Key": "k-2"})

    assert other.status_code == 422
    assert other.json()["errors"][0]["header"] == "Idempotency-Key"
    assert count(Patient) == before


def test_a_failed_request_stores_no_idempotency_key(world: World) -> None:
    with world.client() as api:
        bad = api.post("/patients", json={**NEW_PATIENT, "phone": "555"}, headers={"Idempotency-Key": "k-3"})
        good = api.post("/patients", json=NEW_PATIENT, headers={"Idempotency-Key": "k-3"})
    assert bad.status_code == 422 and good.status_code == 201


def test_a_practitioner_token_reads_but_may_not_write(world: World) -> None:
    practitioner = make_clinic("Third Place", "doc@c.example", Role.PRACTITIONER)
    with world.client(practitioner) as api:
        read = api.get(f"/patients/{practitioner.patient_id}")
        refused = api.post("/patients", json=NEW_PATIENT)
        cancel = api.patch(f"/appointments/{practitioner.appointment_ids[0]}", json={"status": "cancelled"})

    assert read.status_code == 200
    assert refused.status_code == cancel.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"


def world_db() -> str:
    from tests.conftest import PG_URL

    return PG_URL
