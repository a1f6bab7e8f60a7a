"""Patients through the API: search with a cursor, change details, consent, and the inbox."""

from __future__ import annotations

from engage.db import session_scope
from engage.records.models import InboundMessage
from tests.web.api.conftest import World
from tests.web.api.test_resources import enrol


def test_search_finds_by_name_phone_in_any_format_and_email_and_pages_with_a_cursor(world: World) -> None:
    with world.client() as api:
        for i in range(4):
            api.post("/patients", json={"first_name": f"Ana{i}", "last_name": "Zed", "email": f"z{i}@x.example"})
        by_phone = api.get("/patients", params={"q": "(415) 555-0123"}).json()
        by_email = api.get("/patients", params={"q": "z2@x"}).json()
        first = api.get("/patients", params={"q": "zed", "limit": 3}).json()
        second = api.get("/patients", params={"q": "zed", "limit": 3, "cursor": first["next_cursor"]}).json()
        bad = api.get("/patients", params={"cursor": "nonsense"})

    assert [p["id"] for p in by_phone["items"]] == [world.a.patient_id]
    assert [p["email"] for p in by_email["items"]] == ["z2@x.example"]
    names = [p["first_name"] for p in first["items"] + second["items"]]
    assert sorted(names) == ["Ana0", "Ana1", "Ana2", "Ana3"] and second["next_cursor"] is None
    assert bad.status_code == 422 and bad.json()["errors"][0]["parameter"] == "cursor"


def test_patch_changes_only_the_fields_sent(world: World) -> None:
    with world.client() as api:
        changed = api.patch(f"/patients/{world.a.patient_id}", json={"phone": "415 555 0188", "locale": "es"})
        bad = api.patch(f"/patients/{world.a.patient_id}", json={"email": "not-an-email", "timezone": "Nowhere"})

    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["phone"] == "+14155550188" and body["locale"] == "es" and body["first_name"] == "Ana"
    assert sorted(e["pointer"] for e in bad.json()["errors"]) == ["#/email", "#/timezone"]


def test_opting_out_by_api_cancels_pending_sms_and_opting_in_brings_them_back(world: World) -> None:
    enrol(world)
    path = f"/patients/{world.a.patient_id}/consent"
    with world.client() as api:
        out = api.post(path, json={"channel": "sms", "state": "opted_out", "reason": "asked by phone"})
        sms_after_out = {
            r["status"] for r in api.get(f"/patients/{world.a.patient_id}/timeline").json() if r["channel"] == "sms"
        }
        back = api.post(path, json={"channel": "sms", "state": "opted_in", "reason": "asked again at the desk"})
        missing_reason = api.post(path, json={"channel": "sms", "state": "opted_out"})

    assert out.status_code == 200, out.text
    assert "scheduled" not in sms_after_out
    assert back.json()["changes"]["revived"] > 0
    assert missing_reason.json()["errors"][0]["pointer"] == "#/reason"


def test_inbox_lists_flagged_replies_of_the_clinic_only(world: World) -> None:
    with session_scope() as session:
        for clinic, patient_id in ((world.a.id, world.a.patient_id), (world.b.id, world.b.patient_id)):
            session.add(
                InboundMessage(
                    clinic_id=clinic,
                    patient_id=patient_id,
                    from_phone="+14155550123",
                    body="can I come Friday instead?",
                    kind="other",
                    flagged=True,
                    flag_reason="not a keyword or score",
                )
            )
    with world.client() as api:
        items = api.get("/inbox").json()

    assert [(i["patient_id"], i["body"], i["patient"]) for i in items] == [
        (world.a.patient_id, "can I come Friday instead?", "Ana Ruiz")
    ]


def test_an_integrator_reads_the_consent_in_force_per_channel_with_its_source_and_time(world: World) -> None:
    path = f"/patients/{world.a.patient_id}"
    with world.client() as api:
        before = api.get(path).json()["consent"]
        api.post(f"{path}/consent", json={"channel": "sms", "state": "opted_out", "reason": "asked by phone"})
        after = api.get(path).json()["consent"]
        dob = api.patch(path, json={"date_of_birth": "1980-03-14"}).json()["date_of_birth"]

    assert before == {
        "sms": {"state": "opted_in", "source": "default", "at": None},
        "email": {"state": "opted_in", "source": "default", "at": None},
    }
    assert after["sms"]["state"] == "opted_out" and after["sms"]["source"] == "staff" and after["sms"]["at"]
    assert after["email"]["source"] == "default"
    assert dob == "1980-03-14"


def test_reading_a_patient_through_the_api_is_audited_as_a_view_and_another_clinics_is_not_read(world: World) -> None:
    """HIPAA's audit controls cover the API as they do the staff pages: each read of a patient's record (details,
    timeline, scores) is a ``patient.view`` of the token's owner; a patient of another clinic is 404, unlogged."""
    from sqlalchemy import select

    from engage.records.models import AuditEvent

    patient = world.a.patient_id
    with world.client() as api:
        answers = [api.get(path) for path in (f"/patients/{patient}", f"/patients/{patient}/timeline")]
        answers.append(api.get(f"/patients/{patient}/outcomes"))
        elsewhere = api.get(f"/patients/{world.b.patient_id}")
    assert [a.status_code for a in answers] == [200, 200, 200] and elsewhere.status_code == 404
    with session_scope() as session:
        views = session.scalars(select(AuditEvent).where(AuditEvent.action == "patient.view").order_by(AuditEvent.id))
        seen = [(v.clinic_id, v.actor, v.subject_type, v.subject_id) for v in views]
    assert seen == [(world.a.id, f"api:{world.a.staff_email}", "patient", patient)] * 3
