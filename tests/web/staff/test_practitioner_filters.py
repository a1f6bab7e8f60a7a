"""The practitioner filter on the patient page (plans and visits) and on the message list (and its CSV): a
practitioner picks themselves, the desk picks anyone, a bad choice is said beside the field."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engage.clock import utcnow
from engage.db import session_scope
from engage.records.models import Appointment
from engage.records.plans import create_plan
from engage.records.practitioners import add_practitioner
from engage.schedule.enrollments import enroll
from tests import seed
from tests.web.staff.support import HTML, signed_in

TZ = "America/New_York"


def _two_practitioners() -> dict[str, int]:
    """Ana: a sciatica plan with Dr. Chen (its second visit seen by Dr. Okafor) and a neck plan with Dr. Okafor;
    Bo: a plan with Dr. Okafor. Every plan enrolled (so every one has messages)."""
    day = (utcnow() + timedelta(days=3)).astimezone(ZoneInfo(TZ)).date()
    with session_scope() as session:
        clinic = seed.clinic(session)
        seed.staff(session, clinic.id, "chen@clinic.example", "practitioner")
        seed.staff(session, clinic.id, "desk@clinic.example", "front_desk")
        chen = add_practitioner(session, clinic.id, staff_email="chen@clinic.example", name="Dr. Chen", actor="t")
        okafor = add_practitioner(session, clinic.id, name="Dr. Okafor", external_id="DR-2", actor="t")
        ana = seed.patient(session, clinic.id, "Ana", "Ruiz", phone="+14155550123")
        bo = seed.patient(session, clinic.id, "Bo", "Lee", phone="+14155550188")
        plans = {}
        for key, patient, condition, hour, who in (
            ("sciatica", ana, "sciatica", 9, chen.id),
            ("neck", ana, "neck pain", 15, okafor.id),
            ("bo", bo, "neck pain", 11, okafor.id),
        ):
            plan = create_plan(
                session,
                patient_id=patient.id,
                condition=condition,
                modality="massage",
                first=f"{day.isoformat()}T{hour:02d}:00",
                sessions=2,
                every=timedelta(days=7),
                practitioner_id=who,
                actor="test",
            )
            plans[key] = plan.id
        second = session.scalars(
            select(Appointment).where(Appointment.plan_id == plans["sciatica"]).order_by(Appointment.start_at)
        ).all()[1]
        second.practitioner_id = okafor.id  # a colleague sees session 2
        session.flush()
        for key, patient in (("sciatica", ana), ("neck", ana), ("bo", bo)):
            enroll(session, patient.id, plans[key], seed.SEQUENCE, enrolled_by="test")
        return {"ana": ana.id, "bo": bo.id, "chen": chen.id, "okafor": okafor.id, **plans}


def test_the_patient_page_shows_one_practitioners_plans_and_visits(db_url: str) -> None:
    ids = _two_practitioners()
    client, _ = signed_in("chen@clinic.example")
    everyone = client.get(f"/patients/{ids['ana']}", headers=HTML).text
    assert f"Plan {ids['sciatica']}: sciatica, massage (active), with Dr. Chen" in everyone
    assert f"Plan {ids['neck']}: neck pain, massage (active), with Dr. Okafor" in everyone
    mine = client.get(f"/patients/{ids['ana']}?practitioner=me", headers=HTML).text
    assert f"Plan {ids['sciatica']}:" in mine and f"Plan {ids['neck']}:" not in mine
    assert "1 plan of other practitioners not shown" in mine
    sessions = mine.split(f"Sessions of plan {ids['sciatica']} (cancelled")[1].split("</table>")[0]
    assert "<td>Dr. Chen</td>" in sessions and "Dr. Okafor" not in sessions  # session 2 is Dr. Okafor's
    theirs = client.get(f"/patients/{ids['ana']}?practitioner={ids['okafor']}", headers=HTML).text
    assert f"Plan {ids['neck']}:" in theirs and f"Plan {ids['sciatica']}:" in theirs  # one visit of it is theirs
    sessions = theirs.split(f"Sessions of plan {ids['sciatica']} (cancelled")[1].split("</table>")[0]
    assert "<td>2</td>" in sessions and "<td>1</td>" not in sessions  # numbered over the whole plan
    bad = client.get(f"/patients/{ids['ana']}?practitioner=999", headers=HTML).text
    assert 'class="field-error">choose a practitioner from the list: showing everyone' in bad
    assert f"Plan {ids['neck']}:" in bad


def test_the_message_list_and_its_csv_filter_by_practitioner(db_url: str) -> None:
    ids = _two_practitioners()
    client, _ = signed_in("desk@clinic.example")
    everyone = client.get("/messages?template=visit-reminder", headers=HTML).text
    assert "6 messages." in everyone  # two visits in each of three plans
    chen = client.get(f"/messages?template=visit-reminder&practitioner={ids['chen']}", headers=HTML).text
    assert "1 message." in chen and "Ana Ruiz" in chen and "Bo Lee" not in chen
    okafor = client.get(f"/messages?template=visit-reminder&practitioner={ids['okafor']}", headers=HTML).text
    assert "5 messages." in okafor
    assert f"practitioner={ids['okafor']}" in okafor.split("Download these as CSV")[0]  # the CSV link keeps it
    plan_level = client.get(f"/messages?template=welcome&practitioner={ids['chen']}", headers=HTML).text
    assert "1 message." in plan_level  # no visit: the plan's practitioner
    csv = client.get(f"/messages.csv?template=visit-reminder&practitioner={ids['chen']}")
    assert csv.status_code == 200 and len(csv.text.strip().splitlines()) == 2
    bad = client.get("/messages?practitioner=abc", headers=HTML).text
    assert 'class="field-error">choose a practitioner from the list: showing everyone' in bad
    assert client.get("/messages.csv?practitioner=abc").status_code == 400
