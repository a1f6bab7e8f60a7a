"""Benchmark: the front desk's pages, server time per request, on PostgreSQL.

    python -m tests.bench.bench_front_desk [--patients 100000] [--messages 1000000] [--requests 100] [--reuse]

1. Seeds (untimed, set-based SQL) the staff benchmark's clinic (:func:`tests.bench.bench_staff.seed`:
   ``--patients`` patients, ``--messages`` outbox rows), then 300 visits today and 300 tomorrow in the
   clinic's time zone (each in its own plan with a visit reminder, some sent, some confirmed, some with a
   call-back), and 10,000 conversations (10,000 patients who texted twice, a third of them waiting).
2. Times ``GET /`` (Today: the day's and tomorrow's visits with their session numbers and confirmation
   state, what needs attention, the counts): **p50 / p95 / max ms**. Target: p95 ≤ 150 ms.
3. Times ``GET /inbox`` (threads, waiting first): **p50 / p95 / max ms**. Target: p95 ≤ 150 ms.

Beside each, the request's own work, which a busy machine inflates less than the wall clock: the time its
statements took in the database driver (sent to answered, summed), their number, and that plus the web
process's CPU time.

The database: ``ENGAGE_BENCH_DATABASE_URL``, default ``postgresql://postgres@127.0.0.1:5432/engage_bench``
(created if missing, its schema rebuilt by the migrations). Figures are printed with the load average.
``--reuse``: time the rows an earlier run seeded (its migrations brought up to date) instead of seeding again,
which takes minutes at 1,000,000 messages; seeds as usual when the database holds no seeded clinic.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from engage.db import make_engine
from tests.bench.bench_staff import PASSWORD, _p95, _report, _timed, seed
from tests.bench.database import prepare_database, use_bench_database

VISITS_A_DAY = 300
THREADS = 10_000


def seed_front_desk(url: str, clinic_id: int) -> None:
    """Today's and tomorrow's visits and the conversations (see the module docstring), set-based."""
    engine = make_engine(url)
    with engine.begin() as conn:
        # Each visit in its own plan of a patient without one; 8:00 to 18:00 local, every 2 minutes.
        conn.execute(
            text("""
            INSERT INTO treatment_plan (patient_id, condition, modality, planned_sessions, cadence_minutes,
                                        session_minutes, reassess_every, status, created_at)
            SELECT p.id, 'neck pain', 'massage', 6, 10080, 45, 3, 'active', now()
            FROM patient p WHERE p.clinic_id = :clinic
              AND NOT EXISTS (SELECT 1 FROM treatment_plan t WHERE t.patient_id = p.id)
            ORDER BY p.id LIMIT :n"""),
            {"clinic": clinic_id, "n": 2 * VISITS_A_DAY},
        )
        conn.execute(
            text("""
            WITH plans AS (
                SELECT t.id, row_number() OVER (ORDER BY t.id) - 1 AS i FROM treatment_plan t
                WHERE t.condition = 'neck pain'),
            days AS (SELECT (now() AT TIME ZONE 'America/New_York')::date AS today)
            INSERT INTO appointment (plan_id, start_at, end_at, status, updated_at, created_at, confirmed_at,
                                     callback_requested_at)
            SELECT plans.id, s.start_at, s.start_at + interval '45 minutes', 'booked', now(), now() - interval '9 days',
                   CASE WHEN plans.i % 4 = 0 THEN now() - interval '1 hour' END,
                   CASE WHEN plans.i % 9 = 1 THEN now() - interval '2 hours' END
            FROM plans, days,
                 LATERAL (SELECT ((days.today + (plans.i / :a)::int) + time '08:00' + ((plans.i % :a) * 2)
                                  * interval '1 minute') AT TIME ZONE 'America/New_York' AS start_at) s"""),
            {"a": VISITS_A_DAY},
        )
        # Earlier visits of the same plans (session numbers count them) and a visit reminder for each visit today.
        conn.execute(
            text("""
            INSERT INTO appointment (plan_id, start_at, end_at, status, updated_at, created_at)
            SELECT a.plan_id, a.start_at - k * interval '7 days', a.start_at - k * interval '7 days'
                   + interval '45 minutes', CASE WHEN k = 2 THEN 'cancelled' ELSE 'completed' END, now(), now()
            FROM appointment a JOIN treatment_plan t ON t.id = a.plan_id AND t.condition = 'neck pain'
            CROSS JOIN generate_series(1, 3) AS k"""),
        )
        conn.execute(
            text("""
            INSERT INTO enrollment (patient_id, plan_id, sequence_key, status, enrolled_by, created_at, updated_at)
            SELECT patient_id, id, 'dry-needling-sciatica', 'active', 'bench', now(), now()
            FROM treatment_plan WHERE condition = 'neck pain'"""),
        )
        conn.execute(
            text("""
            INSERT INTO message (enrollment_id, patient_id, clinic_id, appointment_id, step_key, occurrence, channel,
                                 template, context, due_at, status, attempts, created_at, updated_at, sent_at,
                                 status_reason)
            SELECT e.id, e.patient_id, :clinic, a.id, 'visit-reminder', 'appt:' || a.id, 'sms', 'visit-reminder', '{}',
                   a.start_at - interval '1 day',
                   CASE WHEN a.id % 3 = 0 THEN 'skipped' WHEN a.start_at - interval '1 day' > now() THEN 'scheduled'
                        ELSE 'delivered' END,
                   1, now(), now(), CASE WHEN a.start_at - interval '1 day' <= now() THEN a.start_at - interval '1 day'
                   END, CASE WHEN a.id % 3 = 0 THEN 'opted out of sms' END
            FROM appointment a JOIN enrollment e ON e.plan_id = a.plan_id
            WHERE a.status = 'booked'"""),
            {"clinic": clinic_id},
        )
        # 10,000 conversations: two texts each from the clinic's first patients, a third waiting for a person.
        conn.execute(
            text("""
            INSERT INTO inbound_message (clinic_id, patient_id, from_phone, body, kind, flagged, flag_reason,
                                         received_at, handled_at, handled_by)
            SELECT :clinic, p.id, p.phone, CASE WHEN k = 1 THEN 'Thanks!' ELSE 'Can I move my visit?' END, 'other',
                   k = 2, CASE WHEN k = 2 THEN 'message for staff' END,
                   now() - ((p.id * 37 + k) % 20000) * interval '1 minute',
                   CASE WHEN k = 2 AND p.id % 3 <> 0 THEN now() END, CASE WHEN k = 2 AND p.id % 3 <> 0 THEN 'desk' END
            FROM (SELECT id, phone FROM patient WHERE clinic_id = :clinic ORDER BY id LIMIT :n) p
            CROSS JOIN generate_series(1, 2) AS k"""),
            {"clinic": clinic_id, "n": THREADS},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def _seeded(url: str) -> str | None:
    """What an earlier run seeded in words, or None when the database holds no seeded front desk. Today's visits
    were seeded for the day of that run: reused on another day, the page shows that day's (fewer) visits."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            clinic = conn.scalar(text("SELECT id FROM clinic WHERE name = 'Bench Clinic'"))
            if clinic is None:
                return None
            patients = conn.scalar(text("SELECT count(*) FROM patient WHERE clinic_id = :c"), {"c": clinic})
            messages = conn.scalar(text("SELECT count(*) FROM message"))
            threads = conn.scalar(text("SELECT count(DISTINCT patient_id) FROM inbound_message"))
    finally:
        engine.dispose()
    if not threads:
        return None
    return f"{patients} patients, {messages} messages, {threads} conversations"


class SqlClock:
    """Sums the time every statement takes in the driver (sent until its answer is in), in this process."""

    def __init__(self) -> None:
        self.ms = 0.0
        self.statements = 0
        event.listen(Engine, "before_cursor_execute", self._before)
        event.listen(Engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, *_: Any) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn: Any, *_: Any) -> None:
        self.ms += (time.perf_counter() - conn.info.pop("bench_t0")) * 1000
        self.statements += 1

    def around(self, run: Callable[[], None], spent: list[tuple[float, int]]) -> Callable[[], None]:
        """``run``, noting (SQL ms, statements) of each call in ``spent``."""

        def timed() -> None:
            self.ms, self.statements = 0.0, 0
            run()
            spent.append((self.ms, self.statements))

        return timed


def _report_sql(name: str, spent: list[tuple[float, int]], timings: tuple[list[float], list[float]]) -> None:
    _, cpu = timings
    sql = [ms for ms, _ in spent[-len(cpu) :]]  # the timed requests (the warm-up ones came first)
    both = [s + c for s, c in zip(sql, cpu, strict=True)]
    print(
        f"  {name}: SQL per request p50 {statistics.median(sql):.1f} ms, p95 {_p95(sql):.1f} ms"
        f" ({spent[-1][1]} statements); SQL + web CPU p50 {statistics.median(both):.1f} ms, p95 {_p95(both):.1f} ms;"
        f" load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=100, help="timed requests per page")
    parser.add_argument("--reuse", action="store_true", help="time the rows of an earlier run (see above)")
    args = parser.parse_args()
    os.environ.setdefault("ENGAGE_SECRET_KEY", "bench-secret-key-0123456789")
    url = use_bench_database(reuse=args.reuse)
    seeded = _seeded(url) if args.reuse else None
    if seeded is not None:
        print(f"reusing the seeded database: {seeded}", flush=True)
    else:
        if args.reuse:
            prepare_database(url)
        t0 = time.perf_counter()
        clinic_id = seed(url, args.patients, args.messages)
        seed_front_desk(url, clinic_id)
        print(
            f"seeded {args.patients} patients, {args.messages} messages, {2 * VISITS_A_DAY} visits today and "
            f"tomorrow, {THREADS} conversations in {time.perf_counter() - t0:.1f}s",
            flush=True,
        )

    from fastapi.testclient import TestClient

    from engage.web.app import create_app

    client = TestClient(create_app())
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    client.post("/login", data={"email": "desk@bench.example", "password": PASSWORD, "csrf_token": token.group(1)})

    def today() -> None:
        answer = client.get("/")
        assert answer.status_code == 200 and answer.text.count("confirmation-") >= 2 * VISITS_A_DAY, answer.text[:300]

    def inbox() -> None:
        answer = client.get("/inbox")
        assert answer.status_code == 200 and f"{THREADS} in all" in answer.text, answer.text[:300]

    clock = SqlClock()
    for name, page in (
        (f"Today with {VISITS_A_DAY} visits today and {args.messages} messages", today),
        (f"Inbox with {THREADS} threads", inbox),
    ):
        spent: list[tuple[float, int]] = []
        timings = _timed(clock.around(page, spent), args.requests)
        _report(name, timings, 150)
        _report_sql(name.split(" with ")[0], spent, timings)


if __name__ == "__main__":
    main()
