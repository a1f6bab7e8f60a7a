"""Times come out one way on every route, and the API can record a visit that already happened."""

from __future__ import annotations

import re
from datetime import timedelta

from engage.clock import utcnow
from tests.web.api.conftest import World

UTC_OUT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")


def test_times_are_written_with_plus_00_00_on_reads_and_writes_alike(world: World) -> None:
    with world.client() as api:
        made = api.post("/appointments", json={"plan_id": world.a.plan_id, "start": "2030-03-04T09:00"}).json()
        read = api.get(f"/plans/{world.a.plan_id}").json()
    written = [made["start"], made["end"]]
    listed = [a["start"] for a in read["appointments"]] + [a["end"] for a in read["appointments"]]
    assert written and listed
    for value in written + listed:
        assert UTC_OUT.match(value), value


def test_a_past_visit_is_refused_unless_allowed_and_then_gets_no_reminder(world: World) -> None:
    last_week = (utcnow() - timedelta(days=7)).strftime("%Y-%m-%dT10:00")
    with world.client() as api:
        api.post(
            "/enrollments",
            json={"patient_id": world.a.patient_id, "plan_id": world.a.plan_id, "sequence": "dry-needling-sciatica"},
        ).raise_for_status()
        refused = api.post("/appointments", json={"plan_id": world.a.plan_id, "start": last_week})
        recorded = api.post("/appointments", json={"plan_id": world.a.plan_id, "start": last_week, "allow_past": True})
        moved_back = api.patch(
            f"/appointments/{world.a.appointment_ids[0]}",
            json={"start": last_week.replace("T10", "T14"), "allow_past": True},
        )
        plan = api.post(
            "/plans",
            json={
                "patient_id": world.a.patient_id,
                "condition": "sciatica",
                "modality": "dry needling",
                "first": last_week.replace("T10", "T11"),  # after the visit recorded at 10:00 (45 minutes)
                "sessions": 2,
                "every": "7d",
                "allow_past": True,
            },
        )
        timeline = api.get(f"/patients/{world.a.patient_id}/timeline").json()
    assert refused.status_code == 422 and "allow_past" in refused.json()["detail"]
    assert "--allow-past" in refused.json()["detail"]  # the same sentence the CLI gives
    assert recorded.status_code == 201, recorded.text
    assert moved_back.status_code == 200, moved_back.text
    assert plan.status_code == 201, plan.text
    about_past = [m for m in timeline if m["appointment_id"] in (recorded.json()["id"], world.a.appointment_ids[0])]
    assert about_past and not [
        m for m in about_past if m["status"] == "scheduled" and m["step"] in ("visit-reminder", "booking-confirmation")
    ]
