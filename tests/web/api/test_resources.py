"""Each resource's happy path through real HTTP: plans, appointments, enrollments, timeline, messages, outcomes."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engage.clock import utcnow
from engage.conversation.outcomes import record_outcome
from engage.db import session_scope
from engage.records.models import Appointment, Message, MessageStatus, TreatmentPlan
from tests.web.api.conftest import World

SEQUENCE = "dry-needling-sciatica"


def enrol(world: World) -> dict:
    with world.client() as api:
        answer = api.post(
            "/enrollments", json={"patient_id": world.a.patient_id, "plan_id": world.a.plan_id, "sequence": SEQUENCE}
        )
    assert answer.status_code == 201, answer.text
    return answer.json()


def reminders_of(world: World, appointment_id: int) -> list[dict]:
    with world.client() as api:
        rows = api.get(f"/patients/{world.a.patient_id}/timeline").json()
    return [r for r in rows if r["appointment_id"] == appointment_id and r["step"] == "visit-reminder"]


def test_plan_is_created_with_its_sessions_and_enrolled_in_one_call(world: World) -> None:
    first = (utcnow() + timedelta(days=3)).strftime("%Y-%m-%dT09:00")
    with world.client() as api:
        created = api.post(
            "/plans",
            json={
                "patient_id": world.a.patient_id,
                "condition": "sciatica",
                "modality": "dry needling",
                "first": first,
                "sessions": 4,
                "every": "7d",
                "duration": "30m",
                "external_id": "PLAN-9",
                "sequence": SEQUENCE,
            },
        )
        plan = api.get(f"/plans/{created.json()['id']}").json()
        timeline = api.get(f"/patients/{world.a.patient_id}/timeline").json()

    assert created.status_code == 201, created.text
    assert created.json()["enrollment_id"] is not None and plan["external_id"] == "PLAN-9"
    starts = [datetime.fromisoformat(a["start"]) for a in plan["appointments"]]
    assert len(starts) == 4 and all(b - a == timedelta(days=7) for a, b in zip(starts, starts[1:], strict=False))
    assert {r["appointment_id"] for r in timeline if r["step"] == "visit-reminder"} == {
        a["id"] for a in plan["appointments"]
    }


def test_moving_an_appointment_moves_its_reminder(world: World) -> None:
    enrol(world)
    appointment_id = world.a.appointment_ids[1]
    [before] = reminders_of(world, appointment_id)
    with world.client() as api:
        moved = api.patch(
            f"/appointments/{appointment_id}",
            # 17:00 UTC: midday in US time zones, so the reminder 24 h before is outside quiet hours
            # whatever time of day the test runs
            json={
                "start": (utcnow() + timedelta(days=15)).replace(hour=17, minute=0, second=0, microsecond=0).isoformat()
            },
        )

    assert moved.status_code == 200, moved.text
    [after] = reminders_of(world, appointment_id)
    assert after["id"] == before["id"] and after["status"] == "scheduled"
    new_start = datetime.fromisoformat(moved.json()["start"])
    assert datetime.fromisoformat(after["due_at"]) == new_start - timedelta(hours=24)


def test_cancelling_an_appointment_cancels_its_reminder(world: World) -> None:
    enrol(world)
    appointment_id = world.a.appointment_ids[2]
    with world.client() as api:
        answer = api.patch(f"/appointments/{appointment_id}", json={"status": "cancelled"})

    assert answer.json()["status"] == "cancelled"
    [reminder] = reminders_of(world, appointment_id)
    assert reminder["status"] == "cancelled" and reminder["reason"] == "appointment cancelled"


def test_an_added_appointment_gets_its_reminder(world: World) -> None:
    enrol(world)
    with world.client() as api:
        added = api.post(
            "/appointments",
            json={
                "plan_id": world.a.plan_id,
                "start": (utcnow() + timedelta(days=30)).strftime("%Y-%m-%dT10:30"),
                "external_id": "APPT-1",
            },
        )

    assert added.status_code == 201, added.text
    assert added.json()["external_id"] == "APPT-1"
    [reminder] = reminders_of(world, added.json()["id"])
    assert reminder["status"] == "scheduled"


def test_a_move_that_breaks_a_rule_is_refused_and_changes_nothing(world: World) -> None:
    enrol(world)
    appointment_id = world.a.appointment_ids[0]
    with world.client() as api:
        api.patch(f"/appointments/{appointment_id}", json={"status": "cancelled"})
        refused = api.patch(f"/appointments/{appointment_id}", json={"start": "2027-03-01T09:00"})
        plan = api.get(f"/plans/{world.a.plan_id}").json()

    assert refused.status_code == 422 and "only booked ones can move" in refused.json()["detail"]
    assert not any(a["start"].startswith("2027-03-01") for a in plan["appointments"])


def test_enrollment_pauses_resumes_and_cancels(world: World) -> None:
    enrollment = enrol(world)
    assert enrollment["changes"]["inserted"] > 0
    with world.client() as api:
        paused = api.post(f"/enrollments/{enrollment['id']}/pause").json()
        held = {r["status"] for r in api.get(f"/patients/{world.a.patient_id}/timeline").json()}
        resumed = api.post(f"/enrollments/{enrollment['id']}/resume").json()
        cancelled = api.post(f"/enrollments/{enrollment['id']}/cancel").json()
        after = {r["status"] for r in api.get(f"/patients/{world.a.patient_id}/timeline").json()}

    assert paused["status"] == "paused" and "scheduled" not in held
    assert resumed["status"] == "active" and resumed["changes"]["revived"] > 0
    assert cancelled["status"] == "cancelled" and after <= {"cancelled", "skipped"}


def test_messages_filter_and_page_with_a_cursor(world: World) -> None:
    enrol(world)
    with world.client() as api:
        everything = api.get("/messages", params={"limit": 200}).json()["items"]
        first = api.get("/messages", params={"limit": 3, "channel": "sms"}).json()
        second = api.get("/messages", params={"limit": 3, "channel": "sms", "cursor": first["next_cursor"]}).json()
        bad = api.get("/messages", params={"status": "lost"})
        other = api.get("/messages", params={"limit": 200}, headers={"Authorization": f"Bearer {world.b.token}"})

    sms = [m for m in everything if m["channel"] == "sms"]
    assert [m["id"] for m in first["items"] + second["items"]] == [m["id"] for m in sms[:6]]
    assert bad.status_code == 422 and bad.json()["errors"][0]["parameter"] == "status"
    assert other.json()["items"] == []


def test_outcomes_list_the_pain_scores(world: World) -> None:
    enrol(world)
    with session_scope() as session:
        prompt = session.query(Message).filter_by(template="reassessment").first()
        assert prompt is not None
        prompt.status = MessageStatus.SENT
        prompt.sent_at = utcnow() - timedelta(hours=1)
        record_outcome(session, prompt, 4, source="sms")
    with world.client() as api:
        outcomes = api.get(f"/patients/{world.a.patient_id}/outcomes").json()

    assert [(o["score"], o["source"]) for o in outcomes] == [(4, "sms")]


def test_putting_exercises_sets_the_plans_choice_and_returns_the_plan(world: World) -> None:
    with world.client() as api:
        answer = api.put(f"/plans/{world.a.plan_id}/exercises", json={"exercises": ["prone-press-up", "gentle-walk"]})
        again = api.get(f"/plans/{world.a.plan_id}")

    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == world.a.plan_id and answer.json()["exercises"] == ["prone-press-up", "gentle-walk"]
    assert again.json()["exercises"] == ["prone-press-up", "gentle-walk"]


def test_an_unknown_exercise_is_a_422_problem_and_changes_nothing(world: World) -> None:
    with world.client() as api:
        api.put(f"/plans/{world.a.plan_id}/exercises", json={"exercises": ["figure-four"]})
        answer = api.put(f"/plans/{world.a.plan_id}/exercises", json={"exercises": ["figure-four", "cartwheel"]})
        plan = api.get(f"/plans/{world.a.plan_id}").json()

    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert "'cartwheel'" in answer.json()["detail"] and answer.json()["errors"][0]["pointer"] == "#/exercises"
    assert plan["exercises"] == ["figure-four"]


def test_another_clinics_plan_exercises_are_404(world: World) -> None:
    with world.client(world.b) as api:
        answer = api.put(f"/plans/{world.a.plan_id}/exercises", json={"exercises": ["figure-four"]})
    with world.client() as api:
        plan = api.get(f"/plans/{world.a.plan_id}").json()

    assert answer.status_code == 404 and answer.headers["content-type"] == "application/problem+json"
    assert plan["exercises"] == []


def _plan_body(world: World, **changes: object) -> dict:
    first = (utcnow() + timedelta(days=3)).strftime("%Y-%m-%dT09:00")
    body = {"patient_id": world.a.patient_id, "condition": "sciatica", "modality": "dry needling", "first": first}
    return {**body, "sessions": 3, "every": "7d", "duration": "45m", **changes}


def _plans_of(patient_id: int) -> int:
    with session_scope() as session:
        return len(session.scalars(select(TreatmentPlan).where(TreatmentPlan.patient_id == patient_id)).all())


def test_a_plan_without_a_condition_or_treatment_is_a_422_naming_the_field(world: World) -> None:
    with world.client() as api:
        no_condition = api.post("/plans", json=_plan_body(world, condition="  "))
        no_treatment = api.post("/plans", json=_plan_body(world, modality="\t "))

    # The schema strips whitespace and wants one character; the library refuses a blank one for every front end.
    for answer, field in ((no_condition, "condition"), (no_treatment, "modality")):
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert [e["pointer"] for e in answer.json()["errors"]] == [f"#/{field}"]
    assert _plans_of(world.a.patient_id) == 1  # only the world's own


def test_plan_sessions_that_overlap_each_other_or_a_booked_visit_are_a_422_and_nothing_is_written(
    world: World,
) -> None:
    with session_scope() as session:
        booked = session.get_one(Appointment, world.a.appointment_ids[0])
        on_it = booked.start_at.astimezone(ZoneInfo("America/New_York")) - timedelta(days=3) + timedelta(minutes=15)
    with world.client() as api:
        crowded = api.post("/plans", json=_plan_body(world, every="30m", duration="45m"))
        clash = api.post("/plans", json=_plan_body(world, first=on_it.strftime("%Y-%m-%dT%H:%M"), every="3d"))

    assert crowded.status_code == 422, crowded.text
    [error] = crowded.json()["errors"]
    assert error["pointer"] == "#/every" and "session 1 (" in error["detail"] and "would overlap" in error["detail"]
    assert clash.status_code == 422, clash.text
    [error] = clash.json()["errors"]
    assert error["pointer"] == "#/first"
    assert error["detail"].startswith("session 2 (") and f"overlaps appointment {booked.id}" in error["detail"]
    assert _plans_of(world.a.patient_id) == 1
