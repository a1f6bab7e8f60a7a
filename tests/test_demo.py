"""``engage demo``, the README's main job: run as a new user would, in an empty folder with no credentials.

The demos that run the clock run as real processes (``python -m engage demo``): the demo starts an
in-process Celery worker and sets the Celery app up for it, which is the process's to keep.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from engage.db import make_engine
from tests.cli import engage, engage_process
from tests.demo_volume import sent_messages, volume_table

#: The tests that read the default demo's report and database share one run of it (the demo runs the clock
#: for 45 simulated days: the longest part of this file); keep them on one xdist worker so it runs once.
pytestmark = pytest.mark.xdist_group("demo")


@pytest.fixture
def empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder; the demo uses its defaults there (./engage.db, ./outbox)."""
    monkeypatch.delenv("ENGAGE_OUTBOX_DIR", raising=False)
    monkeypatch.delenv("ENGAGE_DATABASE_URL", raising=False)
    folder = tmp_path / "newcomer"
    folder.mkdir()
    return folder


@dataclass(frozen=True)
class DemoRun:
    folder: Path
    report: dict[str, Any]


@pytest.fixture(scope="module")
def default_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``engage demo --json`` with its defaults, run once in an empty folder, for the tests that only read it."""
    from tests.conftest import clean_environment

    folder = tmp_path_factory.mktemp("default-demo")
    with pytest.MonkeyPatch.context() as monkeypatch:
        clean_environment(monkeypatch, folder)  # as the autouse clean_env fixture, not yet run at module scope
        monkeypatch.delenv("ENGAGE_OUTBOX_DIR")
        report = engage_process("demo", "--json", cwd=folder, timeout=180).json
    return DemoRun(folder, report)


def test_demo_sends_the_sequence_into_the_outbox_and_prints_a_summary(empty_folder: Path) -> None:
    result = engage_process("demo", cwd=empty_folder, timeout=120)
    assert result.code == 0, result.stderr
    out = result.stdout
    assert "Seeded demo clinic" in out and "replies STOP" in out
    assert "template" in out and "what-to-expect" in out and "visit-reminder" in out
    assert "Outbox:" in out
    emails = sorted((empty_folder / "outbox").glob("email-*.eml"))
    sms = sorted((empty_folder / "outbox").glob("sms-*.json"))
    # One what-to-expect per demo patient, the patient without a phone gets his two reassessments by email,
    # and those whose plan ends within the demo's 45 days an end-of-plan email.
    assert len(emails) >= 5 + 2
    assert len(sms) > 30
    spanish = [json.loads(p.read_text())["body"] for p in sms]
    assert any("STOP" in body for body in spanish)
    assert f"Outbox: {len(emails) + len(sms)} files" in out


def test_demo_json_report_agrees_with_the_database_and_a_rerun_starts_afresh(empty_folder: Path) -> None:
    first = engage_process("demo", "--json", "--patients", "5", cwd=empty_folder, timeout=120).json
    # Every send wrote a file; one SMS then failed at the carrier (a message to resolve this morning).
    handed_over = first["messages"]["sent"] + first["messages"]["failed"]
    assert handed_over == first["outbox_files"]["total"] == first["tasks"]["send_message"]
    assert first["morning"]["failed_messages"] == 1 and first["removed_earlier_demo_clinics"] == 0

    from engage.records.models import Message, MessageStatus, Patient

    engine = make_engine(f"sqlite:///{empty_folder / 'engage.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Message.channel,
                Message.status,
                Message.sent_at,
                Message.patient_id,
                Patient.timezone,
                Patient.first_name,
                Message.step_key,
            )
            .join(Patient, Patient.id == Message.patient_id)
            .where(Patient.clinic_id == first["clinic_id"])
        ).all()
    engine.dispose()
    sent = [r for r in rows if r.status == MessageStatus.SENT]
    assert len(sent) == first["messages"]["sent"]
    for row in sent:  # never in quiet hours (20:00-08:00 local)
        local = row.sent_at.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(row.timezone or "America/New_York"))
        assert 8 <= local.hour < 20, (row.channel, local)
    stop = next(p for p in first["patients"] if p["stop_at"])
    stop_at = datetime.fromisoformat(stop["stop_at"])
    late_sms = [
        r
        for r in rows
        if r.patient_id == stop["patient_id"]
        and r.channel.value == "sms"
        and r.status == MessageStatus.SENT
        and r.sent_at.replace(tzinfo=ZoneInfo("UTC")) > stop_at
    ]
    assert late_sms == []  # nothing after STOP
    assert any(r.patient_id == stop["patient_id"] and r.status == MessageStatus.CANCELLED for r in rows)
    # Frequency caps (default: the FCC healthcare exemption's 1 non-urgent SMS a local day, 3 in any 7 days),
    # the busiest patient included. Aftercare is safety advice, outside the caps like the welcome.
    for patient in first["patients"]:
        zone = ZoneInfo(patient["timezone"])
        days = Counter(
            r.sent_at.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone).date()
            for r in sent
            if r.patient_id == patient["patient_id"]
            and r.channel.value == "sms"
            and r.step_key not in ("welcome", "aftercare")
        )
        assert max(days.values(), default=0) <= 1, patient["name"]
        for first_day in days:
            assert sum(days[first_day + timedelta(days=i)] for i in range(7)) <= 3, patient["name"]
    no_phone = next(p for p in first["patients"] if not p["phone"])
    assert all(
        r.status != MessageStatus.SENT
        for r in rows
        if r.patient_id == no_phone["patient_id"] and r.channel.value == "sms"
    )

    second = engage_process("demo", "--json", "--days", "10", cwd=empty_folder, timeout=120).json
    assert second["removed_earlier_demo_clinics"] == 1
    engine = make_engine(f"sqlite:///{empty_folder / 'engage.db'}")
    with engine.connect() as conn:
        clinics = conn.execute(text("SELECT id FROM clinic")).scalars().all()
        logins = conn.execute(text("SELECT clinic_id FROM staff_user")).scalars().all()
        orphans = conn.execute(text("SELECT count(*) FROM message WHERE patient_id NOT IN (SELECT id FROM patient)"))
        orphan_count = orphans.scalar()
    engine.dispose()
    assert clinics == [second["clinic_id"]] and logins == [second["clinic_id"]] and orphan_count == 0


def test_the_demo_ends_now_with_visits_today_and_tomorrow_texts_waiting_and_pain_charts(
    default_demo: DemoRun,
) -> None:
    report = default_demo.report
    now = datetime.now(UTC)
    assert datetime.fromisoformat(report["simulated"]["end"]) <= now
    engine = make_engine(f"sqlite:///{default_demo.folder / 'engage.db'}")
    with engine.connect() as conn:
        latest_sent = conn.execute(text("SELECT max(sent_at) FROM message")).scalar()
        beat = conn.execute(text("SELECT at FROM heartbeat")).scalar()
        visits = conn.execute(text("SELECT start_at, status FROM appointment")).all()
        texts = (
            conn.execute(
                text("SELECT body FROM inbound_message WHERE handled_at IS NULL AND kind IN ('other', 'reschedule')")
            )
            .scalars()
            .all()
        )
        charts = conn.execute(text("SELECT count(*) FROM outcome GROUP BY patient_id HAVING count(*) >= 3")).all()
        failed = conn.execute(text("SELECT count(*) FROM message WHERE status = 'failed'")).scalar()
        unborn = conn.execute(text("SELECT count(*) FROM patient WHERE date_of_birth IS NULL")).scalar()
    engine.dispose()
    assert datetime.fromisoformat(str(latest_sent)).replace(tzinfo=UTC) <= now, "nothing was sent in the future"
    assert datetime.fromisoformat(str(beat)).replace(tzinfo=UTC) <= now, "the heartbeat is not ahead of now"
    zone = ZoneInfo("America/New_York")
    today = now.astimezone(zone).date()
    days = Counter(datetime.fromisoformat(str(s)).replace(tzinfo=UTC).astimezone(zone).date() for s, _ in visits)
    assert days[today] + days[today + timedelta(days=1)] >= 4
    over = [
        status for s, status in visits if datetime.fromisoformat(str(s)).replace(tzinfo=UTC) < now - timedelta(hours=1)
    ]
    assert over and "booked" not in over, "the visits that are over were attended (or missed)"
    assert any("cita" in body for body in texts) and any("numb" in body for body in texts) and "R" in texts
    assert len(charts) >= 3 and failed == 1
    assert unborn == 0, "every demo patient has a date of birth, as at a real desk"


def test_demo_screens_every_patient_gives_aftercare_after_two_visits_and_never_sends_two_at_once(
    default_demo: DemoRun,
) -> None:
    report = default_demo.report
    engine = make_engine(f"sqlite:///{default_demo.folder / 'engage.db'}")
    sent = sent_messages(engine, report["clinic_id"])
    engine.dispose()
    names = {p["name"].split()[0] for p in report["patients"]}

    # What to expect (the only screening before needling) reaches every patient: all have an email.
    assert {m.patient for m in sent if m.step == "what-to-expect"} == names
    # Aftercare after each of the first two visits, by SMS or (no phone, or opted out) by email.
    for name in names:
        visits = {m.appointment_id for m in sent if m.patient == name and m.step == "aftercare"}
        assert len(visits) == 2, name
    # Never two messages in the same minute, but for the welcome and the booking confirmation.
    by_minute = Counter((m.patient, m.at.replace(second=0, microsecond=0)) for m in sent)
    for (name, minute), count in by_minute.items():
        if count > 1:
            steps = sorted(
                m.step for m in sent if m.patient == name and m.at.replace(second=0, microsecond=0) == minute
            )
            assert steps == ["booking-confirmation", "welcome"], (name, minute, steps)
    # The stretch text goes only to patients whose practitioner picked exercises (Maria and Tom in the demo).
    assert {m.patient for m in sent if m.step == "stretch"} <= {"Maria", "Tom"}
    # The table the issue asks for: no patient gets more than 3 capped texts in any rolling week.
    table = volume_table(sent)
    assert all(row["week_capped_sms"] <= 3 for row in table), table


def test_demo_refuses_a_database_with_real_patients_waiting(empty_folder: Path) -> None:
    from engage.config import get_settings
    from engage.records import migrate
    from tests.bench.bench_delivery import seed_due_messages

    url = f"sqlite:///{empty_folder / 'engage.db'}"
    migrate.upgrade(url)
    import os

    os.environ["ENGAGE_DATABASE_URL"] = url
    get_settings.cache_clear()
    try:
        seed_due_messages(1, 0)
    finally:
        del os.environ["ENGAGE_DATABASE_URL"]
        get_settings.cache_clear()
    result = engage("demo", cwd=empty_folder)  # refused before the clock runs: in-process is enough
    assert result.code == 2
    assert "waiting to be sent to real patients" in result.stderr
    assert not (empty_folder / "outbox").exists()


def test_demo_prints_one_command_for_the_staff_app_and_its_login_works(
    empty_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import re

    from fastapi.testclient import TestClient

    from engage.config import get_settings
    from engage.web.app import create_app

    out = engage_process("demo", "--patients", "2", "--days", "3", cwd=empty_folder, timeout=120)
    assert out.code == 0, out.stderr
    command = re.search(r"^  (ENGAGE_DATABASE_URL=(\S+) engage serve)$", out.stdout, re.M)
    login = re.search(r"sign in as (\S+) with the password (\S+)$", out.stdout, re.M)
    assert command is not None and login is not None, out.stdout
    # What that command serves: the demo database, relative to the folder the demo ran in.
    monkeypatch.chdir(empty_folder)
    monkeypatch.setenv("ENGAGE_DATABASE_URL", command.group(2))
    get_settings.cache_clear()
    client = TestClient(create_app())
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    signed_in = client.post(
        "/login", data={"email": login.group(1), "password": login.group(2), "csrf_token": token.group(1)}
    )
    assert signed_in.url.path == "/" and "Riverside Physio (demo)" in signed_in.text
    assert "Maria" in client.get("/patients").text
    # The demo's history gives its Outcomes page real figures (36 finished episodes, 3 practitioners).
    outcomes = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", client.get("/outcomes").text))
    assert re.search(r"Responders \(2 points and 30 %\): \d+ % , \d+ of 3\d episodes", outcomes), outcomes[:2000]
    assert "Dr. Maya Chen" in outcomes and "Kaplan–Meier median" in outcomes


def test_the_outcome_history_is_made_whatever_the_time_of_day(db_url: str) -> None:
    """Its weekly sessions are at office hours: taken from the time the demo runs, one fell in the hour repeated
    when clocks went back (2026-11-01 01:30 in New York, 200 days before this ``now``) and the demo stopped."""
    from engage import clock
    from engage.db import session_scope
    from engage.demo import HISTORY_NAMES, _outcome_history
    from engage.records.models import Appointment
    from tests import seed

    now = datetime(2027, 4, 15, 5, 30, tzinfo=UTC)
    with clock.frozen(now), session_scope() as session:
        clinic = seed.clinic(session)
        _outcome_history(session, clinic.id, now)
        starts = session.scalars(select(Appointment.start_at)).all()
    assert len(starts) == 6 * len(HISTORY_NAMES)
    zone = ZoneInfo("America/New_York")
    assert {s.replace(tzinfo=UTC).astimezone(zone).hour for s in starts} <= set(range(9, 14))
