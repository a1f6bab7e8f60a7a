"""Benchmark: the Outcomes page and the outcome summary API on PostgreSQL, server time per request.

    python -m tests.bench.bench_outcomes [--episodes 20000] [--scores 200000] [--requests 40] [--reuse]

1. Seeds (untimed, set-based SQL) one clinic with 10 practitioners and ``--episodes`` patients, each with a
   6-session weekly plan (first sessions spread over the last 200 days), an enrollment, 3 reassessment prompts
   sent (4.5, 9.5 and 14.5 days after the first session; two enrollments in three answer each 12 hours later),
   and ``--scores`` / ``--episodes`` pain scores: a baseline the day before the first session and follow-ups
   every 5 days after it; VACUUM ANALYZE.
2. Computes every enrollment's stored facts once (what the first read after the upgrade does).
3. Times ``GET /api/v1/outcomes/summary`` (an API token) and ``GET /outcomes`` (a signed-in practitioner), both
   for the whole clinic (the worst case: no filter), then a new score followed by the summary (its enrollment's
   facts are stale and computed again), and a prompt's status changed the way delivery changes it (bulk SQL,
   logged by the database's triggers) followed by the summary: **p50 / p95 / max ms**. Target: p95 under
   300 ms. Each also prints the web process's CPU per request and PostgreSQL's (the bench database's server
   processes, read from ``/proc``): on a shared machine the wall times follow the load, the CPU per request
   much less.

The database is ``ENGAGE_BENCH_DATABASE_URL`` (created if missing, schema rebuilt by the migrations).
``--reuse`` keeps a database an earlier run seeded with the same counts (the seed takes minutes on a busy
machine): its schema is brought up to date by the migrations and a new API token is made.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import time
from collections.abc import Callable

from sqlalchemy import select, text, update

from engage.config import get_settings
from engage.conversation.measures import record_score
from engage.db import make_engine, session_scope
from engage.outcomes.stored_facts import refresh
from engage.records import migrate
from engage.records.api_tokens import create_token
from engage.records.clinics import create_clinic
from engage.records.models import Clinic, Message, MessageStatus, Patient
from engage.records.staff import create_staff
from tests.bench.bench_staff import _report, _timed
from tests.bench.database import DEFAULT_URL, use_bench_database

PASSWORD = "bench password 123"


def seed(url: str, episodes: int, scores: int) -> tuple[int, str]:
    """The clinic's id and an API token of its practitioner."""
    with session_scope() as session:
        clinic = create_clinic(
            session,
            name="Bench Clinic",
            timezone="America/New_York",
            address="1 Bench St",
            email="f@bench.example",
            actor="test",
        )
        create_staff(
            session,
            clinic_id=clinic.id,
            email="doc@bench.example",
            name="Doc",
            role_name="practitioner",
            password=PASSWORD,
            actor="test",
        )
        _, token = create_token(session, staff_email="doc@bench.example", actor="test")
        clinic_id = clinic.id
    per_patient = max(2, scores // episodes)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("""
            INSERT INTO practitioner (clinic_id, name, external_id, active, created_at)
            SELECT :c, 'Practitioner ' || i, 'DR-' || i, true, now() FROM generate_series(1, 10) AS i"""),
            {"c": clinic_id},
        )
        conn.execute(
            text("""
            INSERT INTO patient (clinic_id, first_name, last_name, phone, phone_invalid, locale, created_at)
            SELECT :c, 'P' || i, 'Bench', '+1415' || (2000000 + i)::text, false, 'en', now()
            FROM generate_series(1, :n) AS i"""),
            {"c": clinic_id, "n": episodes},
        )
        conn.execute(
            text("""
            INSERT INTO treatment_plan (patient_id, condition, modality, planned_sessions, cadence_minutes,
                                        session_minutes, reassess_every, status, created_at, practitioner_id)
            SELECT p.id, 'sciatica', 'dry needling', 6, 10080, 45, 3, 'active', now(),
                   (SELECT min(id) FROM practitioner) + p.id % 10
            FROM patient p WHERE p.clinic_id = :c"""),
            {"c": clinic_id},
        )
        conn.execute(
            text("""
            INSERT INTO appointment (plan_id, start_at, end_at, status, updated_at, created_at, practitioner_id)
            SELECT t.id, f.first + (k * interval '7 days'), f.first + (k * interval '7 days') + interval '45 minutes',
                   CASE WHEN f.first + (k * interval '7 days') < now() THEN 'completed' ELSE 'booked' END,
                   now(), now(), t.practitioner_id
            FROM treatment_plan t
            CROSS JOIN LATERAL (SELECT now() - interval '200 days' + (t.id * 7919 % (180 * 24)) * interval '1 hour'
                                AS first) f
            CROSS JOIN generate_series(0, 5) AS k"""),
        )
        # Statistics for the LATERAL look-ups below (without them the planner scans every visit per enrollment).
        conn.execute(text("ANALYZE treatment_plan; ANALYZE appointment"))
        conn.execute(
            text("""
            INSERT INTO enrollment (patient_id, plan_id, sequence_key, status, enrolled_by, created_at, updated_at,
                                    plan_version)
            SELECT patient_id, id, CASE WHEN id % 4 = 0 THEN 'acupuncture-low-back' ELSE 'dry-needling-sciatica' END,
                   CASE WHEN id % 3 = 0 THEN 'completed' ELSE 'active' END, 'bench', now(), now(), 0
            FROM treatment_plan"""),
        )
        conn.execute(text("ANALYZE enrollment"))
        conn.execute(
            text("""
            INSERT INTO message (enrollment_id, patient_id, clinic_id, step_key, occurrence, channel, template, context,
                                 due_at, status, attempts, created_at, updated_at, sent_at)
            SELECT e.id, e.patient_id, (SELECT clinic_id FROM patient WHERE patient.id = e.patient_id),
                   'reassessment', 'n:' || k, CASE WHEN k = 2 THEN 'email' ELSE 'sms' END,
                   'reassessment', '{}', a.start_at + k * interval '5 days' - interval '12 hours', 'delivered', 1,
                   now(), now(), a.start_at + k * interval '5 days' - interval '12 hours'
            FROM enrollment e
            JOIN LATERAL (SELECT min(start_at) AS start_at FROM appointment WHERE plan_id = e.plan_id) a ON true
            CROSS JOIN generate_series(1, 3) AS k"""),
        )
        conn.execute(
            text("""
            INSERT INTO outcome (patient_id, score, source, recorded_at, measure)
            SELECT e.patient_id,
                   CASE WHEN k = 0 THEN 5 + e.id % 5 ELSE greatest(0, 5 + e.id % 5 - (k * (e.id % 4)) / 3) END,
                   CASE WHEN k = 0 THEN 'intake' ELSE 'sms' END,
                   a.start_at + (CASE WHEN k = 0 THEN interval '-1 day' ELSE k * interval '5 days' END), 'nprs'
            FROM enrollment e
            JOIN LATERAL (SELECT min(start_at) AS start_at FROM appointment WHERE plan_id = e.plan_id) a ON true
            CROSS JOIN generate_series(0, :per - 1) AS k"""),
            {"per": per_patient},
        )
        # Two enrollments in three answer their prompts: the follow-up 12 hours after each is its answer.
        conn.execute(
            text("""
            UPDATE outcome o SET prompt_message_id = m.id
            FROM message m
            WHERE m.patient_id = o.patient_id AND o.recorded_at = m.sent_at + interval '12 hours'
              AND m.enrollment_id % 3 <> 0"""),
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        counts = conn.execute(text("SELECT (SELECT count(*) FROM enrollment), (SELECT count(*) FROM outcome)")).one()
    engine.dispose()
    print(f"seeded {counts[0]} enrollments and {counts[1]} scores", flush=True)
    return clinic_id, token


def _reused(episodes: int, scores: int) -> tuple[int, str] | None:
    """An API token on the bench database when an earlier run seeded it with these counts (schema upgraded)."""
    url = os.environ.get("ENGAGE_BENCH_DATABASE_URL", DEFAULT_URL)
    os.environ["ENGAGE_DATABASE_URL"] = url
    get_settings.cache_clear()
    try:
        engine = make_engine(url)
        with engine.connect() as conn:
            counts = conn.execute(
                # The seed's scores (the timed runs add staff-recorded ones, which a reuse keeps).
                text(
                    "SELECT (SELECT count(*) FROM enrollment), (SELECT count(*) FROM outcome WHERE source <> 'staff'),"
                    " (SELECT count(*) FROM outcome WHERE prompt_message_id IS NOT NULL)"
                )
            ).one()
        engine.dispose()
    except Exception:  # noqa: BLE001 - no database or no schema yet: seed one
        return None
    if counts[0] != episodes or counts[1] != max(2, scores // episodes) * episodes or not counts[2]:
        return None
    migrate.upgrade(url)
    with session_scope() as session:
        _, token = create_token(session, staff_email="doc@bench.example", actor="test")
        clinic_id = session.scalars(select(Clinic.id).where(Clinic.name == "Bench Clinic")).one()
    print(f"reusing {counts[0]} enrollments and {counts[1]} scores", flush=True)
    return clinic_id, token


def _database_cpu(url: str) -> Callable[[], float | None]:
    """A reading of the CPU milliseconds the bench database's server processes (its backends, this reader's
    excepted) have used, from ``/proc``; None when they cannot be read (a server on another machine)."""
    engine = make_engine(url)
    tick = os.sysconf("SC_CLK_TCK")

    def read() -> float | None:
        with engine.connect() as conn:
            pids = conn.scalars(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            ).all()
        total = 0.0
        try:
            for pid in pids:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) * 1000 / tick  # utime + stime
        except OSError:
            return None
        return total

    return read


def _measured(name: str, run: Callable[[], None], times: int, database_cpu: Callable[[], float | None]) -> None:
    """:func:`_timed` and :func:`_report`, and PostgreSQL's CPU per request (warm-up requests included)."""
    before = database_cpu()
    timings = _timed(run, times)
    after = database_cpu()
    _report(name, timings, 300)
    if before is not None and after is not None:
        print(f"  PostgreSQL server CPU per request: {(after - before) / (times + 10):.1f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--scores", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=40, help="timed requests per route")
    parser.add_argument("--quick", action="store_true", help="2,000 episodes, 20,000 scores, 20 requests")
    parser.add_argument("--reuse", action="store_true", help="keep a database seeded with the same counts")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.scores, args.requests = 2_000, 20_000, 20
    os.environ.setdefault("ENGAGE_SECRET_KEY", "bench-secret-key-0123456789")
    reused = _reused(args.episodes, args.scores) if args.reuse else None
    if reused is None:
        url = use_bench_database()
        t0 = time.perf_counter()
        reused = seed(url, args.episodes, args.scores)
        print(f"seeding took {time.perf_counter() - t0:.1f}s", flush=True)
    clinic_id, token = reused
    # The seed wrote with raw SQL, past the writes' marking: every enrollment's facts are computed once here (as
    # the first read after the upgrade that adds the table would); afterwards a write recomputes only its own.
    t0 = time.perf_counter()
    with session_scope() as session:
        computed = refresh(session, clinic_id)
    print(f"computing {computed} enrollments' stored facts took {time.perf_counter() - t0:.1f}s", flush=True)

    from fastapi.testclient import TestClient

    from engage.web.app import create_app

    api = TestClient(create_app())
    api.headers["Authorization"] = f"Bearer {token}"
    page = TestClient(create_app())
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get("/login").text)
    assert csrf is not None
    page.post("/login", data={"email": "doc@bench.example", "password": PASSWORD, "csrf_token": csrf.group(1)})

    def summary() -> None:
        answer = api.get("/api/v1/outcomes/summary")
        assert answer.status_code == 200 and answer.json()["episodes"] > 0, answer.text[:300]

    def outcomes_page() -> None:
        answer = page.get("/outcomes")
        assert answer.status_code == 200 and "Kaplan" in answer.text

    with session_scope() as session:
        patients = list(session.scalars(select(Patient.id).where(Patient.clinic_id == clinic_id)))
    picker = random.Random(24)

    def score_then_summary() -> None:
        # A reply arrives between two reads: its enrollment's stored facts are computed again by the read.
        with session_scope() as session:
            record_score(session, picker.choice(patients), picker.randint(0, 10), actor="bench")
        summary()

    with session_scope() as session:
        prompts = list(session.scalars(select(Message.id).where(Message.template == "reassessment")))

    def delivered_then_summary() -> None:
        # A provider's callback between two reads: its enrollment is logged by the trigger and computed again.
        with session_scope() as session:
            message = Message.__table__
            status = picker.choice([MessageStatus.DELIVERED, MessageStatus.FAILED])
            session.execute(update(message).where(message.c.id == picker.choice(prompts)).values(status=status))
        summary()

    database_cpu = _database_cpu(os.environ["ENGAGE_DATABASE_URL"])
    _measured(f"outcome summary API over {args.episodes} episodes", summary, args.requests, database_cpu)
    _measured(f"Outcomes page over {args.episodes} episodes", outcomes_page, args.requests, database_cpu)
    _measured("a new score, then the summary API", score_then_summary, args.requests, database_cpu)
    _measured("a prompt's status changed, then the summary API", delivered_then_summary, args.requests, database_cpu)


if __name__ == "__main__":
    main()
