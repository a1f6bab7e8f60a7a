"""Today: the day's and tomorrow's visits in the clinic's time zone, each with the patient's name, a tel: link,
its session number and its confirmation state in words; what needs a person names the patient and the visit."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from engage.clock import utcnow
from engage.conversation.inbound import InboundSms, receive_sms
from engage.db import session_scope
from engage.records.models import Appointment, AuditEvent, Channel, Message, MessageStatus
from engage.records.plans import create_plan
from engage.schedule.enrollments import enroll
from engage.schedule.reconcile import reconcile_patient
from engage.web.staff.pages import local
from tests import seed
from tests.web.staff.support import HTML, signed_in

TZ = "America/New_York"


def _visits_today_and_tomorrow() -> dict[str, int]:
    """Ana: session 1 today at noon, session 2 tomorrow at noon (clinic time). Bo: a visit the day after."""
    today = utcnow().astimezone(ZoneInfo(TZ)).date()
    with session_scope() as session:
        clinic = seed.clinic(session)
        seed.staff(session, clinic.id, "desk@clinic.example", "front_desk")
        ana = seed.patient(session, clinic.id, email="ana@example.com", phone="+14155550123")
        bo = seed.patient(session, clinic.id, "Bo", "Lee", phone="+14155550188")
        plan = create_plan(
            session,
            patient_id=ana.id,
            condition="sciatica",
            modality="dry needling",
            first=f"{today.isoformat()}T12:00",
            sessions=2,
            every=timedelta(days=1),
            allow_past=True,
            actor="test",
        )
        enroll(session, ana.id, plan.id, seed.SEQUENCE, enrolled_by="test")
        later = create_plan(
            session,
            patient_id=bo.id,
            condition="neck pain",
            modality="massage",
            first=f"{today + timedelta(days=2)}T09:00",
            sessions=1,
            every=timedelta(days=7),
            actor="test",
        )
        session.flush()
        return {"ana": ana.id, "bo": bo.id, "plan": plan.id, "later": later.appointments[0].id, "clinic": clinic.id}


def test_today_lists_todays_and_tomorrows_visits_with_name_phone_session_and_confirmation(db_url: str) -> None:
    ids = _visits_today_and_tomorrow()
    client, _ = signed_in("desk@clinic.example")
    page = client.get("/", headers=HTML).text
    today_part = page.split("Tomorrow, ")[0]
    tomorrow_part = page.split("Tomorrow, ")[1].split('<h2 id="attention-h">')[0]
    assert "Today, " in today_part and "1 visit" in today_part
    assert f'<a href="/patients/{ids["ana"]}">Ana Ruiz</a>' in today_part
    assert '<a href="tel:+14155550123">+14155550123</a>' in today_part
    assert "1 of 2" in today_part and "2 of 2" in tomorrow_part
    assert "12:00–12:45" in today_part
    assert "Reminder due" in tomorrow_part or "Reminder not sent" in tomorrow_part
    assert "Bo Lee" not in page.split('<h2 id="attention-h">')[0], "the day after tomorrow is not on Today"


def test_staff_confirm_a_visit_by_phone_and_a_patients_c_confirms_the_next_one(db_url: str) -> None:
    ids = _visits_today_and_tomorrow()
    client, csrf = signed_in("desk@clinic.example")
    with session_scope() as session:
        tomorrow = session.scalars(
            select(Appointment).where(Appointment.plan_id == ids["plan"]).order_by(Appointment.start_at.desc())
        ).first()
        assert tomorrow is not None
        tomorrow_id = tomorrow.id
    done = client.post(f"/appointments/{tomorrow_id}/confirm", data={"csrf_token": csrf}, headers=HTML)
    assert "Visit of Ana Ruiz confirmed by desk@clinic.example." in done.text
    assert "Confirmed by desk@clinic.example" in done.text.split("Tomorrow, ")[1]
    with session_scope() as session:
        assert session.scalar(select(AuditEvent.actor).where(AuditEvent.action == "appointment.confirmed_by_staff"))
        receive_sms(session, InboundSms("SMx1", "+14155550188", "+14155550100", "C"), replan=reconcile_patient)
    page = client.get("/", headers=HTML).text
    assert "Bo Lee" not in page.split('<h2 id="attention-h">')[0]
    with session_scope() as session:
        confirmed = session.get(Appointment, ids["later"])
        assert confirmed is not None and confirmed.confirmed_at is not None and confirmed.confirmed_by is None


def test_a_call_back_request_names_the_patient_and_the_visit_date(db_url: str) -> None:
    ids = _visits_today_and_tomorrow()
    with session_scope() as session:
        receive_sms(session, InboundSms("SMx2", "+14155550188", "+14155550100", "R"), replan=reconcile_patient)
        start = session.get(Appointment, ids["later"]).start_at  # type: ignore[union-attr]
    client, _ = signed_in("desk@clinic.example")
    attention = client.get("/", headers=HTML).text.split('<h2 id="attention-h">')[1]
    assert "Bo Lee</a>" in attention and "asks to be called back to rebook" in attention
    assert f"(next visit {local(start, TZ)})" in attention
    assert "patient " + str(ids["bo"]) not in attention and "appointment " not in attention


def test_a_staff_confirmation_of_a_cancelled_visit_is_refused_with_the_reason(db_url: str) -> None:
    ids = _visits_today_and_tomorrow()
    client, csrf = signed_in("desk@clinic.example")
    client.post(f"/appointments/{ids['later']}/cancel", data={"csrf_token": csrf}, headers=HTML)
    answer = client.post(f"/appointments/{ids['later']}/confirm", data={"csrf_token": csrf}, headers=HTML)
    assert "Visit not confirmed: appointment" in answer.text
    assert "is cancelled; only booked visits confirm" in answer.text
    with session_scope() as session:
        assert session.get(Appointment, ids["later"]).confirmed_at is None  # type: ignore[union-attr]


def test_a_practitioner_filters_today_by_themselves_and_a_bad_choice_is_said_beside_the_field(db_url: str) -> None:
    from engage.records.practitioners import add_practitioner

    today = utcnow().astimezone(ZoneInfo(TZ)).date()
    with session_scope() as session:
        clinic = seed.clinic(session)
        seed.staff(session, clinic.id, "chen@clinic.example", "practitioner")
        chen = add_practitioner(session, clinic.id, staff_email="chen@clinic.example", name="Dr. Chen", actor="t")
        okafor = add_practitioner(session, clinic.id, name="Dr. Okafor", external_id="DR-2", actor="t")
        for first, who in (("Ana", chen.id), ("Bo", okafor.id)):
            patient = seed.patient(session, clinic.id, first, "Ruiz", phone=None, email=f"{first}@example.com")
            create_plan(
                session,
                patient_id=patient.id,
                condition="sciatica",
                modality="dry needling",
                first=f"{today.isoformat()}T12:00",
                sessions=1,
                every=timedelta(days=7),
                allow_past=True,
                practitioner_id=who,
                actor="test",
            )
    client, _ = signed_in("chen@clinic.example")
    everyone = client.get("/", headers=HTML).text.split('<h2 id="attention-h">')[0]
    assert "Ana Ruiz" in everyone and "Bo Ruiz" in everyone and "<td>Dr. Okafor</td>" in everyone
    mine = client.get("/?practitioner=me", headers=HTML).text.split('<h2 id="attention-h">')[0]
    assert "Ana Ruiz" in mine and "Bo Ruiz" not in mine and "Dr. Chen (me)</option>" in mine
    bad = client.get("/?practitioner=abc", headers=HTML).text
    assert 'id="e-practitioner" class="field-error">choose a practitioner from the list: showing everyone' in bad


def _sections(page: str) -> dict[str, dict[str, str]]:
    """Today's count lists: {"Messages due in the next 24 hours": {"SMS": "1", ...}, ...}."""
    found: dict[str, dict[str, str]] = {}
    for title, items in re.findall(r'<h2 id="[\w-]+">([^<]+)</h2>\s*<ul class="counts">(.*?)</ul>', page, re.S):
        found[title] = {label.strip(): n for n, label in re.findall(r"<strong>(\d+)</strong>\s*([^<]+)</li>", items)}
    return found


def test_the_counts_and_lists_of_messages_are_the_clinics_own_by_the_real_clock(db_url: str) -> None:
    now = utcnow()
    with session_scope() as session:
        clinic = seed.clinic(session)
        other = seed.clinic(session, "Elsewhere", "front@elsewhere.example")
        seed.staff(session, clinic.id, "desk@clinic.example", "front_desk")
        ana = seed.patient(session, clinic.id, "Ana", "Ruiz", email="ana@example.com")
        zed = seed.patient(session, other.id, "Zed", "Other", phone="+14155550999", email="zed@example.com")
        for patient in (ana, zed):
            seed.enrolled(session, patient.id, sessions=3)
        mine = [m.id for m in seed.messages(session, ana.id)]
        theirs = [m.id for m in seed.messages(session, zed.id)]
    assert len(mine) >= 9 and len(theirs) >= 9
    # (status, channel, due, last change) for Ana's rows; the other clinic's rows all count if scoping fails.
    hour = timedelta(hours=1)
    scenes = [
        (MessageStatus.SCHEDULED, Channel.SMS, now + 2 * hour, now - 5 * hour),  # due: 1 SMS
        (MessageStatus.SCHEDULED, Channel.EMAIL, now + 23 * hour, now - 5 * hour),  # due: 1 email
        (MessageStatus.SCHEDULED, Channel.SMS, now + 25 * hour, now - 5 * hour),  # not due within 24 h
        (MessageStatus.DELIVERED, Channel.SMS, now - 3 * hour, now - hour),  # delivered in the last 24 h
        (MessageStatus.SENT, Channel.EMAIL, now - 30 * hour, now - 30 * hour),  # too long ago
        (MessageStatus.FAILED, Channel.SMS, now - 72 * hour, now - 72 * hour),  # stuck, not "last 24 h"
        (MessageStatus.UNKNOWN, Channel.EMAIL, now - 2 * hour, now - 2 * hour),  # stuck and in the last 24 h
        (MessageStatus.BOUNCED, Channel.EMAIL, now - 48 * hour, now - 48 * hour),  # a bounce of this week
        (MessageStatus.SKIPPED, Channel.SMS, now - 4 * hour, now - 4 * hour),  # skipped in the last 24 h
    ]
    with session_scope() as session:
        table = Message.__table__
        rows = [*zip(mine, scenes, strict=False), *zip(theirs, scenes, strict=False)]
        for message_id, (status, channel, due, changed) in rows:
            session.execute(
                update(table)
                .where(table.c.id == message_id)
                .values(status=status, channel=channel, due_at=due, updated_at=changed, status_reason=None)
            )
        for message_id in [*mine[len(scenes) :], *theirs[len(scenes) :]]:  # the rest: long done
            session.execute(
                update(table)
                .where(table.c.id == message_id)
                .values(status=MessageStatus.DELIVERED, due_at=now - 200 * hour, updated_at=now - 200 * hour)
            )
    client, _ = signed_in("desk@clinic.example")

    page = client.get("/", headers=HTML).text

    assert _sections(page) == {
        "Messages due in the next 24 hours": {"SMS": "1", "emails": "1"},
        "Messages in the last 24 hours": {
            "sent": "0",
            "delivered": "1",
            "failed": "0",
            "unknown": "1",
            "bounced": "0",
            "undelivered": "0",
            "skipped": "1",
        },
    }
    stuck = page.split("Failed and unknown messages (2)")[1].split("</table>")[0]
    assert [int(i) for i in re.findall(r'action="/messages/(\d+)/resolve"', stuck)] == [mine[5], mine[6]]  # by due
    assert stuck.count("Ana Ruiz") == 2 and "Zed" not in page
    assert re.findall(r"<td>(SMS|EMAIL) [\w-]+</td>", stuck) == ["SMS", "EMAIL"]
    assert re.findall(r'class="status-(\w+)"', stuck) == ["failed", "unknown"]
    bounces = page.split("<h3>Bounces and invalid numbers</h3>")[1].split("</ul>")[0]
    assert f'<a href="/patients/{ana.id}">Ana Ruiz</a>: email bounced' in bounces
    # The messages list offers the same resolve form for a stuck message, coming back to the same list.
    listed = client.get("/messages", params={"status": "failed"}, headers=HTML).text
    form = listed.split(f'action="/messages/{mine[5]}/resolve"')[1].split("</form>")[0]
    assert 'name="back" value="/messages?status=failed"' in form and f"Resolve message {mine[5]}" in form
    assert f"/messages/{mine[6]}/resolve" not in listed  # unknown, not failed
