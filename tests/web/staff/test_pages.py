"""Staff pages in-process: the Today banner, search, form errors, the CSV export and the message answers."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from engage.clock import utcnow
from engage.db import session_scope
from engage.delivery.heartbeat import record_tick
from engage.records import api_tokens
from engage.records.models import Clinic, MessageStatus, Patient, StaffUser, TreatmentPlan
from tests import seed
from tests.web.staff.support import HTML, signed_in

BANNER = "Messages are not being sent: workers or beat are down."


def _clinic(role: str = "front_desk") -> dict[str, int]:
    with session_scope() as session:
        clinic = seed.clinic(session)
        seed.staff(session, clinic.id, "desk@clinic.example", role)
        ana = seed.patient(session, clinic.id, email="ana@example.com")
        plan_id = seed.enrolled(session, ana.id)
        return {"clinic": clinic.id, "ana": ana.id, "plan": plan_id}


def test_today_shows_the_red_banner_only_while_beat_is_not_ticking(db_url: str) -> None:
    _clinic()
    client, _ = signed_in("desk@clinic.example")
    assert BANNER in client.get("/").text  # never ticked
    record_tick(utcnow() - timedelta(minutes=5))
    assert BANNER in client.get("/").text  # 5 minutes is more than 3 ticks of 15 s
    record_tick(utcnow())
    assert BANNER not in client.get("/").text


def test_search_finds_a_phone_typed_any_way_and_names_by_prefix(db_url: str) -> None:
    _clinic()
    client, _ = signed_in("desk@clinic.example")
    for typed in ("(415) 555-0123", "415.555.0123", "+1 415 555 0123"):
        assert "Ruiz, Ana" in client.get("/patients", params={"q": typed}).text, typed
    assert "Ruiz, Ana" in client.get("/patients", params={"q": "ru an"}).text
    assert "Ruiz, Ana" not in client.get("/patients", params={"q": "zz"}).text


def test_a_bad_patient_form_names_each_field_and_saves_nothing(db_url: str) -> None:
    _clinic()
    client, csrf = signed_in("desk@clinic.example")
    answer = client.post(
        "/patients/new",
        headers=HTML,
        data={
            "csrf_token": csrf,
            "first_name": "",
            "last_name": "Doe",
            "phone": "12",
            "email": "not-an-email",
            "timezone": "Mars/Base",
            "locale": "en",
        },
    )
    assert answer.status_code == 400
    for field in ("first_name", "phone", "email", "timezone"):
        assert f'id="e-{field}"' in answer.text, field
    assert 'value="Doe"' in answer.text  # what was typed stays
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 1


def test_moving_a_session_answers_with_what_happened_to_the_messages(db_url: str) -> None:
    ids = _clinic()
    client, csrf = signed_in("desk@clinic.example")
    with session_scope() as session:
        planned = [m for m in seed.messages(session, ids["ana"]) if m.step_key != "welcome"]  # the welcome has none
        first = min(planned, key=lambda m: m.due_at).appointment
        assert first is not None
        to = (first.start_at + timedelta(days=1)).astimezone().strftime("%Y-%m-%dT%H:%M")
        appointment_id = first.id
    page = client.post(f"/appointments/{appointment_id}/move", data={"csrf_token": csrf, "to": to})
    assert "Appointment moved; " in page.text and "messages moved" in page.text
    page = client.post(f"/appointments/{appointment_id}/cancel", data={"csrf_token": csrf})
    notice = page.text.split("Appointment cancelled (session 1, ")[1].split("</p>")[0]
    assert "cancelled" in notice.split("; ")[1]


def test_messages_csv_holds_the_filtered_rows(db_url: str) -> None:
    ids = _clinic()
    with session_scope() as session:
        failed = seed.messages(session, ids["ana"])[0]
        failed.status = MessageStatus.FAILED
        failed_id = failed.id
    client, _ = signed_in("desk@clinic.example")
    answer = client.get("/messages.csv", params={"status": "failed"})
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [int(r["id"]) for r in rows] == [failed_id] and rows[0]["patient"] == "Ana Ruiz"
    everything = list(csv.DictReader(io.StringIO(client.get("/messages.csv").text)))
    assert len(everything) > 1
    assert client.get("/messages", params={"status": "nonsense"}, headers=HTML).status_code == 400


def test_practitioner_handles_a_reply_with_a_note(db_url: str) -> None:
    ids = _clinic("practitioner")
    with session_scope() as session:
        reply_id = seed.flagged_reply(session, ids["clinic"], ids["ana"], "Pain is worse after stretching").id
    client, csrf = signed_in("desk@clinic.example")
    assert "Pain is worse after stretching" in client.get("/inbox").text
    done = client.post(f"/inbox/{reply_id}/handled", data={"csrf_token": csrf, "note": "Advised rest, call Friday"})
    assert "Reply marked handled" in done.text and "handled</td>" in done.text and "waiting</strong>" not in done.text
    assert "Advised rest, call Friday" in client.get(f"/patients/{ids['ana']}").text


def test_practitioner_records_a_pain_score_the_front_desk_may_not(db_url: str) -> None:
    ids = _clinic("practitioner")
    with session_scope() as session:
        seed.staff(session, ids["clinic"], "front@clinic.example", "front_desk")
    doctor, csrf = signed_in("desk@clinic.example")
    too_high = doctor.post(f"/patients/{ids['ana']}/outcomes", data={"csrf_token": csrf, "score": "11"}).text
    assert "Pain score not recorded: a pain score is a whole number from 0 to 10" in too_high
    page = doctor.post(f"/patients/{ids['ana']}/outcomes", data={"csrf_token": csrf, "score": "4"}).text
    assert "Pain score 4 recorded" in page and 'data-scores="[{&#34;x&#34;' in page
    front, front_csrf = signed_in("front@clinic.example")
    assert "Record pain score" not in front.get(f"/patients/{ids['ana']}").text
    refused = front.post(
        f"/patients/{ids['ana']}/outcomes", data={"csrf_token": front_csrf, "score": "2"}, headers=HTML
    )
    assert refused.status_code == 403


def test_admin_creates_an_api_token_sees_it_once_and_revokes_it(db_url: str) -> None:
    _clinic("admin")
    client, csrf = signed_in("desk@clinic.example")
    page = client.post("/settings/tokens", data={"csrf_token": csrf, "label": "EHR sync"}).text
    shown = re.search(r"<code>(eng_[^<]+)</code>", page)
    assert shown is not None and "EHR sync" in page
    with session_scope() as session:
        caller = api_tokens.authenticate(session, shown.group(1))
        assert caller is not None and caller.email == "desk@clinic.example"
        token_id = caller.token_id
    again = client.get("/settings").text
    assert shown.group(1) not in again and "EHR sync" in again  # listed, never shown again
    revoked = client.post(f"/settings/tokens/{token_id}/revoke", data={"csrf_token": csrf}).text
    assert f"API token {token_id} revoked" in revoked
    with session_scope() as session:
        assert api_tokens.authenticate(session, shown.group(1)) is None


def test_settings_name_the_sms_caps_in_force(db_url: str) -> None:
    ids = _clinic("admin")
    client, _ = signed_in("desk@clinic.example")
    assert (
        "at most 1 non-urgent SMS a local day and 3 in any 7 days: FCC healthcare exemption"
        in client.get("/settings").text
    )
    with session_scope() as session:
        session.get_one(Clinic, ids["clinic"]).sms_per_week = 2
    assert "1 non-urgent SMS a local day and 2 in any 7 days: set by the clinic" in client.get("/settings").text


def test_a_session_that_already_happened_is_recorded_only_when_ticked_and_gets_no_reminder(db_url: str) -> None:
    from engage.records.models import Appointment

    ids = _clinic()
    client, csrf = signed_in("desk@clinic.example")
    last_week = (utcnow() - timedelta(days=7)).astimezone().strftime("%Y-%m-%dT%H:%M")
    form = {"csrf_token": csrf, "start": last_week}
    refused = client.post(f"/plans/{ids['plan']}/appointments", data=form)
    assert "Appointment not added" in refused.text and "in the past" in refused.text
    with session_scope() as session:
        before = session.scalar(select(func.count()).select_from(Appointment)) or 0

    added = client.post(f"/plans/{ids['plan']}/appointments", data={**form, "allow_past": "1"})
    assert "Appointment added; " in added.text
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Appointment)) == before + 1
        past = session.scalars(select(Appointment).order_by(Appointment.start_at)).first()
        assert past is not None and past.start_at < utcnow()
        reminders = [
            m
            for m in seed.messages(session, ids["ana"])
            if m.appointment_id == past.id
            and m.status is MessageStatus.SCHEDULED
            and m.step_key in ("visit-reminder", "booking-confirmation")
        ]
    assert reminders == []
    page = client.get(f"/patients/{ids['ana']}", headers=HTML)
    assert 'name="allow_past"' in page.text


def _new_plan(client: TestClient, csrf: str, patient_id: int, **changes: str) -> Response:
    first = (utcnow() + timedelta(days=20)).astimezone().strftime("%Y-%m-%dT09:00")
    form = {"csrf_token": csrf, "condition": "sciatica", "modality": "dry needling", "first": first, "sessions": "3"}
    return client.post(
        f"/patients/{patient_id}/plans", headers=HTML, data={**form, "every_days": "7", "minutes": "45", **changes}
    )


def _plans() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(TreatmentPlan)) or 0


def test_a_plan_without_a_condition_or_treatment_is_refused_beside_the_field(db_url: str) -> None:
    ids = _clinic()
    client, csrf = signed_in("desk@clinic.example")
    before = _plans()

    no_condition = _new_plan(client, csrf, ids["ana"], condition="   ", first="2027-01-20T09:00")
    no_treatment = _new_plan(client, csrf, ids["ana"], modality=" ")

    assert no_condition.status_code == 400
    assert re.search(r'id="plan-condition"[^>]*aria-invalid="true"', no_condition.text, re.S)
    assert '<small id="plan-e-condition" class="field-error">Plan not created: a plan needs a condition.' in (
        no_condition.text
    )
    assert 'value="2027-01-20T09:00"' in no_condition.text  # what was typed stays
    assert 'id="plan-e-modality" class="field-error">Plan not created: a plan needs a treatment' in no_treatment.text
    assert _plans() == before


def test_plan_sessions_that_overlap_each_other_or_a_booked_visit_are_refused_beside_the_field(db_url: str) -> None:
    ids = _clinic()
    client, csrf = signed_in("desk@clinic.example")
    before = _plans()
    with session_scope() as session:
        # The first visit's first message (the welcome SMS, of no visit, is sooner outside quiet hours).
        visit_messages = [m for m in seed.messages(session, ids["ana"]) if m.appointment is not None]
        booked = min(visit_messages, key=lambda m: m.due_at).appointment
        assert booked is not None
        patient = session.get_one(Patient, ids["ana"])
        on_it = booked.start_at.astimezone(ZoneInfo(patient.effective_timezone)).strftime("%Y-%m-%dT%H:%M")
        booked_id = booked.id

    crowded = _new_plan(client, csrf, ids["ana"], every_days="1", minutes="1500")  # 25-hour sessions, daily
    clash = _new_plan(client, csrf, ids["ana"], first=on_it)

    assert crowded.status_code == 400
    assert re.search(r'<small id="plan-e-every_days" class="field-error">Plan not created: session 1 \(', crowded.text)
    assert "would overlap" in crowded.text
    assert clash.status_code == 400
    error = re.search(r'<small id="plan-e-first" class="field-error">([^<]*)</small>', clash.text)
    assert error is not None and f"overlaps appointment {booked_id} of the same patient" in error.group(1)
    assert _plans() == before
    assert _new_plan(client, csrf, ids["ana"]).status_code == 200 and _plans() == before + 1  # redirected, created


def test_an_admin_cannot_deactivate_their_own_account(db_url: str) -> None:
    _clinic("admin")
    client, csrf = signed_in("desk@clinic.example")
    with session_scope() as session:
        own = session.scalars(select(StaffUser).where(StaffUser.email == "desk@clinic.example")).one().id

    page = client.post(f"/settings/staff/{own}/deactivate", data={"csrf_token": csrf})

    assert "Deactivating failed: you cannot deactivate your own account." in page.text
    with session_scope() as session:
        assert session.get_one(StaffUser, own).active


def test_a_malformed_address_gets_an_html_page_not_json(db_url: str) -> None:
    _clinic()
    client, _ = signed_in("desk@clinic.example")
    page = client.get("/patients/abc", headers=HTML)
    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
    assert "Not a valid address" in page.text and "the patient id in it must be a whole number" in page.text
    missing = client.get("/patients/999999", headers=HTML)
    assert missing.status_code == 404 and "There is nothing here" in missing.text
