"""The CLI and the API answer the fixture's figures, and record scores with a past time (or refuse, saying why)."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import func, select

from engage.clock import utcnow
from engage.db import session_scope
from engage.records.api_tokens import create_token
from engage.records.models import Outcome
from engage.web.app import create_app
from tests import seed
from tests.cli import engage
from tests.outcomes import world as fixture


def _world() -> fixture.World:
    with session_scope() as session:
        return fixture.build(session)


def _scores() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Outcome)) or 0


def test_cli_summary_shows_sixty_percent_with_the_wilson_interval(sqlite_url: str) -> None:
    world = _world()
    data = engage("outcomes", "summary", "--clinic", str(world.clinic_id), "--json").json
    assert (data["episodes"], data["with_follow_up"], data["responders"]["both"]) == (10, 10, 6)
    assert (data["responder_rate"], data["ci95"]) == (0.6, fixture.WILSON_6_OF_10)
    assert [r["episodes"] for r in data["by_practitioner"]] == [6, 4]
    text = engage("outcomes", "summary", "--clinic", str(world.clinic_id)).stdout
    assert "6 of 10 = 60 % (95 % CI 31 % to 83 %)" in text
    only_lee = engage("outcomes", "summary", "--clinic", "1", "--practitioner", str(world.lee), "--json").json
    assert only_lee["episodes"] == 6
    bad = engage("outcomes", "summary", "--clinic", "1", "--from", "yesterday")
    assert bad.code == 2 and "from is a date like 2026-12-01" in bad.stderr


def test_cli_records_a_baseline_dated_in_the_past_and_refuses_bad_scores(sqlite_url: str) -> None:
    world = _world()
    patient_id = world.patients["lee"][6]
    at = (utcnow() - timedelta(days=22)).isoformat()
    before = _scores()
    recorded = engage("outcome", "record", str(patient_id), "--score", "7", "--at", at, "--json").json
    assert (recorded["measure"], recorded["score"], recorded["source"]) == ("nprs", 7, "cli")
    summary = engage("outcomes", "summary", "--clinic", str(world.clinic_id), "--json").json
    assert summary["episodes"] == 11  # that score is a baseline: 2 days before the first session
    for args, says in [
        (["--score", "11"], "a score is a whole number from 0 to 10"),
        (["--score", "5", "--at", (utcnow() + timedelta(days=2)).isoformat()], "cannot be dated in the future"),
        (["--score", "5", "--measure", "psfs"], "names the activity"),
    ]:
        result = engage("outcome", "record", str(patient_id), *args)
        assert result.code == 2 and says in result.stderr, result.stderr
    assert _scores() == before + 1


def test_api_summary_scores_and_observations(pg_url: str) -> None:
    world = _world()
    with session_scope() as session:
        seed.staff(session, world.clinic_id, "doc@clinic.example", role="practitioner")
        seed.staff(session, world.clinic_id, "desk@clinic.example", role="front_desk")
        _, doc_token = create_token(session, staff_email="doc@clinic.example", actor="test")
        _, desk_token = create_token(session, staff_email="desk@clinic.example", actor="test")
    client = TestClient(create_app())
    doc = {"Authorization": f"Bearer {doc_token}"}
    summary = client.get("/api/v1/outcomes/summary", headers=doc).json()
    assert (summary["responder_rate"], summary["ci95"]) == (0.6, fixture.WILSON_6_OF_10)
    assert summary["median_change"] == -2.5
    assert client.get("/api/v1/outcomes/summary", headers={"Authorization": f"Bearer {desk_token}"}).status_code == 403
    bad = client.get("/api/v1/outcomes/summary?from=2026-13-01", headers=doc)
    assert bad.status_code == 422 and "from" in bad.text

    patient_id = world.patients["lee"][7]
    at = (utcnow() - timedelta(days=21)).isoformat()
    made = client.post(f"/api/v1/patients/{patient_id}/outcomes", headers=doc, json={"score": 6, "at": at})
    assert made.status_code == 201 and made.json()["score"] == 6
    psfs = {"score": 3, "measure": "psfs", "item": "climbing stairs"}
    assert client.post(f"/api/v1/patients/{patient_id}/outcomes", headers=doc, json=psfs).status_code == 201
    refused = client.post(f"/api/v1/patients/{patient_id}/outcomes", headers=doc, json={"score": 3, "measure": "psfs"})
    assert refused.status_code == 422 and refused.json()["errors"][0]["pointer"].endswith("item"), refused.text
    assert client.post("/api/v1/patients/999/outcomes", headers=doc, json={"score": 3}).status_code == 404

    bundle = client.get("/api/v1/observations", headers=doc, params={"since": at}).json()
    Bundle.model_validate(bundle)
    codes = [e["resource"]["code"]["coding"][0]["code"] for e in bundle["entry"]]
    # the 10 follow-ups and the new baseline (the fixture's baselines are older than `since`)
    assert codes.count("72514-3") == 11 and codes.count("psfs-item") == 1
    psfs_entry = next(e["resource"] for e in bundle["entry"] if e["resource"]["code"]["coding"][0]["code"] != "72514-3")
    assert psfs_entry["valueInteger"] == 3 and psfs_entry["code"]["text"] == "PSFS: climbing stairs"
    later = client.get("/api/v1/observations", headers=doc, params={"since": utcnow().isoformat()}).json()
    assert later["total"] == 0
