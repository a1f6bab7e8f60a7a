"""Benchmark: the staff app's busiest pages, server time per request, on PostgreSQL.

    python -m tests.bench.bench_staff [--patients 100000] [--messages 1000000] [--requests 200]

1. Seeds (untimed, set-based SQL) one clinic with ``--patients`` patients, plus a
   second clinic of 10 % as many; ``--messages`` outbox rows over 20,000 enrolments
   of the first clinic, due from 60 days ago to 30 days ahead: mostly sent or
   delivered, the future scheduled, about 0.1 % failed or unknown; VACUUM ANALYZE.
2. Signs a front-desk account in (in-process ASGI client: no network) and times
   ``GET /patients?q=...`` over a mix of searches (name prefixes, first + last
   name, an email prefix, phone numbers typed in four formats, the empty list):
   **p50 / p95 / max ms**. Target: p95 under 50 ms.
3. Times ``GET /`` (Today: counts of the next and last 24 h, the failed and unknown
   list, replies, bounces, opt-outs): **p50 / p95 / max ms**. Target: p95 under 150 ms.

The database (``ENGAGE_BENCH_DATABASE_URL``, default
``postgresql://postgres@127.0.0.1:5432/engage_bench``) is created if missing and its
schema dropped and rebuilt with the migrations.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from collections.abc import Callable

from sqlalchemy import text

from engage.db import make_engine, session_scope
from engage.records.clinics import create_clinic
from engage.records.staff import create_staff
from tests.bench.database import use_bench_database

PASSWORD = "bench password 123"
FIRST = [
    "Ana",
    "Ben",
    "Carla",
    "David",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jon",
    "Kim",
    "Luis",
    "Maya",
    "Nora",
    "Omar",
    "Paula",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Uma",
    "Victor",
    "Wen",
    "Xavi",
    "Yara",
    "Zoe",
]
LAST = [
    "Garcia",
    "Smith",
    "Johnson",
    "Lee",
    "Brown",
    "Martinez",
    "Nguyen",
    "Ruiz",
    "Okafor",
    "Kowalski",
    "Rossi",
    "Muller",
    "Dubois",
    "Tanaka",
    "Silva",
    "Cohen",
    "Haddad",
    "Novak",
    "Larsen",
    "Ivanova",
    "Patel",
    "Khan",
    "Walker",
    "Young",
    "Baker",
    "Adams",
    "Clark",
    "Lopez",
    "Hill",
    "Scott",
    "Green",
    "Hall",
    "Wright",
    "King",
]
AREAS = ["212", "415", "312", "720", "617", "305", "206", "512"]


def _array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


def seed(url: str, patients: int, messages: int) -> int:
    """Returns the first clinic's id. Set-based INSERT ... SELECT generate_series: a few seconds a million rows."""
    with session_scope() as session:
        clinic = create_clinic(
            session,
            name="Bench Clinic",
            timezone="America/New_York",
            address="1 Bench St",
            email="front@bench.example",
            region="US",
            actor="test",
        )
        other = create_clinic(
            session,
            name="Other Clinic",
            timezone="America/Chicago",
            address="2 Other St",
            email="front@other.example",
            region="US",
            actor="test",
        )
        create_staff(
            session,
            clinic_id=clinic.id,
            email="desk@bench.example",
            name="Desk",
            role_name="front_desk",
            password=PASSWORD,
            actor="test",
        )
        clinic_id, other_id = clinic.id, other.id
    engine = make_engine(url)
    # A patient's phone: an area code, then a 7-digit local number starting 2-9 (valid North American shapes).
    patient_sql = f"""
        INSERT INTO patient (clinic_id, first_name, last_name, email, phone, phone_invalid, locale, created_at)
        SELECT :clinic, ({_array(FIRST)})[1 + i % {len(FIRST)}],
               ({_array(LAST)})[1 + (i / {len(FIRST)}) % {len(LAST)}] || CASE WHEN i % 3 = 0 THEN '' ELSE
                 '-' || ({_array(LAST)})[1 + (i / 7) % {len(LAST)}] END,
               'p' || i || '.' || :clinic || '@example.com',
               '+1' || ({_array(AREAS)})[1 + i % {len(AREAS)}] || (2000000 + (i * 7919) % 8000000)::text,
               false, CASE WHEN i % 4 = 0 THEN 'es' ELSE 'en' END, now()
        FROM generate_series(1, :n) AS i"""
    per_enrollment = max(1, messages // 20_000)
    enrollments = min(20_000, -(-messages // per_enrollment))
    with engine.begin() as conn:
        conn.execute(text(patient_sql), {"clinic": clinic_id, "n": patients})
        conn.execute(text(patient_sql), {"clinic": other_id, "n": max(1, patients // 10)})
        conn.execute(
            text("""
            INSERT INTO treatment_plan (patient_id, condition, modality, planned_sessions, cadence_minutes,
                                        session_minutes, reassess_every, status, created_at)
            SELECT id, 'sciatica', 'dry needling', 6, 10080, 45, 3, 'active', now()
            FROM patient WHERE clinic_id = :clinic ORDER BY id LIMIT :n"""),
            {"clinic": clinic_id, "n": enrollments},
        )
        conn.execute(
            text("""
            INSERT INTO enrollment (patient_id, plan_id, sequence_key, status, enrolled_by, created_at, updated_at)
            SELECT patient_id, id, 'dry-needling-sciatica', 'active', 'bench', now(), now() FROM treatment_plan""")
        )
        # Planned when enrolled (60-90 days ago); due from 60 days ago to 30 days ahead; the past sent or delivered
        # (0.1 % failed or unknown) and last updated when due, the future scheduled.
        conn.execute(
            text("""
            INSERT INTO message (enrollment_id, patient_id, clinic_id, step_key, occurrence, channel, template, context,
                                 due_at, status, attempts, created_at, updated_at, sent_at)
            SELECT e.id, e.patient_id, :clinic, 'step', 'n:' || k, CASE WHEN k % 5 = 0 THEN 'email' ELSE 'sms' END,
                   'visit-reminder', '{}', d.due,
                   CASE WHEN d.due > now() THEN 'scheduled'
                        WHEN (e.id * 31 + k) % 2000 = 0 THEN 'failed'
                        WHEN (e.id * 31 + k) % 2000 = 1 THEN 'unknown'
                        WHEN k % 3 = 0 THEN 'sent' ELSE 'delivered' END,
                   1, d.planned, CASE WHEN d.due <= now() THEN d.due ELSE d.planned END,
                   CASE WHEN d.due <= now() THEN d.due END
            FROM enrollment e
            CROSS JOIN generate_series(1, :per) AS k
            CROSS JOIN LATERAL (SELECT now() - interval '60 days'
                                + ((e.id * 7919 + k * 104729) % (90 * 1440)) * interval '1 minute' AS due,
                                now() - interval '90 days' + (e.id % (30 * 1440)) * interval '1 minute' AS planned) d
            """),
            {"per": per_enrollment, "clinic": clinic_id},
        )
        conn.execute(
            text("""
            INSERT INTO inbound_message (clinic_id, patient_id, from_phone, body, kind, flagged, flag_reason,
                                         received_at)
            SELECT :clinic, id, phone, 'Can I move my visit?', 'other', true, 'message for staff',
                   now() - (id % 1000) * interval '1 minute'
            FROM patient WHERE clinic_id = :clinic ORDER BY id LIMIT 40"""),
            {"clinic": clinic_id},
        )
    # As autovacuum would have by now: statistics, and a visibility map so the counters stay index-only.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return clinic_id


def _timed(run: Callable[[], None], times: int) -> tuple[list[float], list[float]]:
    """Wall-clock ms per request, and this process's CPU ms per request (the web server's own work, without
    the database's or the waits of a busy machine)."""
    for _ in range(10):  # warm-up: templates compiled, connections pooled, the indexes' pages cached
        run()
    wall, cpu = [], []
    for _ in range(times):
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return wall, cpu


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(0.95 * len(ordered))) - 1)]


def _report(name: str, timings: tuple[list[float], list[float]], target_ms: float) -> None:
    wall, cpu = timings
    p95 = _p95(wall)
    verdict = "meets" if p95 < target_ms else "MISSES"
    load = os.getloadavg()[0]
    print(
        f"{name}: n={len(wall)} p50 {statistics.median(wall):.1f} ms, p95 {p95:.1f} ms, max {max(wall):.1f} ms"
        f" ({verdict} the {target_ms:.0f} ms target); web process CPU p50 {statistics.median(cpu):.1f} ms,"
        f" p95 {_p95(cpu):.1f} ms; load average {load:.1f} on {os.cpu_count()} CPUs",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--quick", action="store_true", help="10,000 patients, 100,000 messages, 50 requests")
    args = parser.parse_args()
    if args.quick:
        args.patients, args.messages, args.requests = 10_000, 100_000, 50
    os.environ.setdefault("ENGAGE_SECRET_KEY", "bench-secret-key-0123456789")
    url = use_bench_database()
    t0 = time.perf_counter()
    seed(url, args.patients, args.messages)
    print(
        f"seeded {args.patients} patients (+{args.patients // 10} in another clinic) and {args.messages} messages "
        f"in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )

    from fastapi.testclient import TestClient

    from engage.web.app import create_app

    client = TestClient(create_app())
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    client.post("/login", data={"email": "desk@bench.example", "password": PASSWORD, "csrf_token": token.group(1)})
    queries = [
        "gar",
        "Ana",
        "ana ruiz",
        "zoe lee",
        "kowal",
        "p4242.",
        "(212) 200-7919",
        "415.201.5838",
        "+1 312 202 3757",
        "7202031676",
        "",
        "nobody-like-this",
    ]
    counter = iter(range(10**9))

    def search() -> None:
        query = queries[next(counter) % len(queries)]
        answer = client.get("/patients", params={"q": query})
        assert answer.status_code == 200, answer.status_code

    def today() -> None:
        answer = client.get("/")
        assert answer.status_code == 200 and "Needs attention" in answer.text

    _report(f"patient search over {args.patients} patients", _timed(search, args.requests), 50)
    _report(f"Today over {args.messages} messages", _timed(today, max(20, args.requests // 2)), 150)


if __name__ == "__main__":
    main()
