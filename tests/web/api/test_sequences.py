"""``/api/v1/sequences`` over real HTTP (issue 23): drafts kept with their problems, the publish dry run's
summary equal to the publish's, versions, a stale publish answered 409, writes for admin tokens only."""

from __future__ import annotations

from engage.db import session_scope
from engage.records.models import Role
from engage.schedule.enrollments import enroll
from engage.schedule.sequences import library_definition
from tests.web.api.conftest import World, make_clinic

SEQ = "dry-needling-sciatica"


def test_an_admin_drafts_checks_and_publishes_a_sequence_over_the_api(world: World) -> None:
    with session_scope() as session:
        enroll(session, world.a.patient_id, world.a.plan_id, SEQ, enrolled_by="test")
    with world.client() as api:
        listed = api.get("/sequences").json()["sequences"]
        assert {"key": SEQ, "name": "Dry needling for sciatica", "version": None, "has_draft": False} in listed

        started = api.post("/sequences", json={"key": SEQ}, headers={"Idempotency-Key": "s1"})
        assert started.status_code == 200 and started.json()["problems"] == []
        definition = library_definition(SEQ)
        reminder = next(s for s in definition["steps"] if s["key"] == "visit-reminder")
        reminder.update(offset="3 dayz")
        bad = api.post("/sequences", json={"key": SEQ, "definition": definition}).json()
        assert [p["field"] for p in bad["problems"]] == ["steps.2.offset"]
        assert api.get(f"/sequences/{SEQ}").json()["draft"]["definition"] == definition  # kept as typed
        refused = api.post(f"/sequences/{SEQ}/publish", json={"current_patients": True})
        assert refused.status_code == 422 and "3 dayz" in refused.json()["detail"]

        reminder.update(offset="-1d", at="18:00")
        assert api.post("/sequences", json={"key": SEQ, "definition": definition}).json()["problems"] == []
        dry = api.post(f"/sequences/{SEQ}/publish/dry-run", json={"current_patients": True})
        assert dry.status_code == 200, dry.text
        assert dry.json() == {"version": 1, "changed": 3, "cancelled": 0, "added": 0}
        assert api.get(f"/sequences/{SEQ}/versions").json() == {"versions": []}
        published = api.post(f"/sequences/{SEQ}/publish", json={"current_patients": True})
        assert published.json() == dry.json()
        [version] = api.get(f"/sequences/{SEQ}/versions").json()["versions"]
        assert version["version"] == 1 and version["summary"]["changed"] == 3
        current = api.get(f"/sequences/{SEQ}").json()
        assert current["version"] == 1 and current["draft"] is None
        assert next(s for s in current["definition"]["steps"] if s["key"] == "visit-reminder")["at"] == "18:00"

        # A second admin's publish of the same (now gone) draft: told which version is current.
        stale = api.post(f"/sequences/{SEQ}/publish", json={"current_patients": True})
        assert stale.status_code == 409 and "version 1" in stale.json()["detail"]
        # Rolling back: version 1 again, as version 2.
        back = api.post(f"/sequences/{SEQ}/publish", json={"current_patients": False, "version": 1})
        assert back.json() == {"version": 2, "changed": 0, "cancelled": 0, "added": 0}

    with world.client(world.b) as other:  # another clinic sees none of it
        assert {"key": SEQ, "name": "Dry needling for sciatica", "version": None, "has_draft": False} in other.get(
            "/sequences"
        ).json()["sequences"]


def test_only_admin_tokens_write(world: World) -> None:
    desk = make_clinic("Front Desk Only", "desk@c.example", role=Role.FRONT_DESK)
    with world.client(token=desk.token) as api:
        assert api.get("/sequences").status_code == 200
        assert api.post("/sequences", json={"key": SEQ}).status_code == 403
        assert api.post(f"/sequences/{SEQ}/publish", json={"current_patients": True}).status_code == 403
