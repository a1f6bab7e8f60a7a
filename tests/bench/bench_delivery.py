"""Delivery benchmark: N due messages through real Celery workers on PostgreSQL + Redis to the fake providers.

    python -m tests.bench.bench_delivery [--n 20000] [--future-rows 1000000]
    python -m tests.bench            # every bench_*.py in turn

Reports messages per second, p50/p99 due-to-accepted latency (the fake
server's receive time minus the message's due time), the worker processes'
peak memory (VmHWM from /proc), the throughput of empty Celery tasks on the
same broker and workers (the ceiling), and the cost of one ``dispatch_due``
tick (its claim query) with 1,000,000 future rows in the outbox.

Set-up: ``ENGAGE_BENCH_DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/engage_bench``; created when missing,
its schema dropped and rebuilt by the migrations: it shares that database with
``bench_scheduling``, so run them one after the other, as ``python -m
tests.bench`` does), ``ENGAGE_BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379/14``, flushed), one ``celery worker --concurrency 2``
(two prefork pool processes), one ``celery beat`` with a 1 s tick, and the fake
provider server as its own process.

The seeding helpers here are shared with the worker fault tests: they build
real clinics, patients, plans and enrolments, so the messages they make are
exactly what planning wants (a send-time re-plan agrees with them) and fall
at midday in the patients' time zone (no quiet hours).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text

from tests.bench.database import DEFAULT_URL, prepare_database
from workers.app import app

ROOT = Path(__file__).resolve().parents[2]
SEQUENCE = "dry-needling-sciatica"
DEFAULT_DB = DEFAULT_URL
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"


# --- seeding (shared with tests/workers/test_faults.py and tests/workers/test_tasks.py) ----------------


def midday_timezone(now: datetime | None = None) -> str:
    """An IANA ``Etc/GMT±N`` zone where it is now about midday, far from the default quiet hours (20:00-08:00)."""
    now = now or datetime.now(timezone.utc)
    offset = 12 - now.hour  # hours east of UTC that make it 12:xx local
    if offset > 14:
        offset -= 24
    if offset < -12:
        offset += 24
    if offset == 0:
        return "Etc/GMT"
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"  # POSIX sign: Etc/GMT-3 is UTC+3


def seed_due_messages(n_sms: int, n_email: int, *, due_at: datetime | None = None) -> dict[str, Any]:
    """Create ``n_sms`` due visit-reminder SMS and ``n_email`` due what-to-expect emails; return their ids.

    Each message comes from its own one-session plan, enrolled in the shipped
    sequence with the planning clock set ten minutes before ``due_at`` (default:
    one second ago), the appointment placed so that the step falls exactly at
    ``due_at``. The plans' other steps lie in the future. Patients live where it
    is midday. Uses ``ENGAGE_DATABASE_URL``. Returns ``{"clinic_id", "sms", "email"}``
    (lists of message ids).
    """
    from engage import clock
    from engage.db import session_scope
    from engage.records import create_clinic
    from engage.records.models import (
        Appointment,
        AppointmentStatus,
        Message,
        MessageStatus,
        Patient,
        PlanStatus,
        TreatmentPlan,
    )
    from engage.schedule.enrollments import enroll_many

    due_at = (due_at or datetime.now(timezone.utc) - timedelta(seconds=1)).replace(microsecond=0)
    planned_at = due_at - timedelta(minutes=10)
    tz = midday_timezone(due_at)
    total = n_sms + n_email
    with clock.frozen(planned_at), session_scope() as session:
        clinic = create_clinic(session, name="Bench Physio", timezone=tz, address="1 Test Way, Springfield, IL 62701",
                               email="front@bench-physio.example", sms_from="+12125550100", region="US", actor="bench")
        patient_ids = list(session.scalars(
            insert(Patient).returning(Patient.id, sort_by_parameter_order=True),
            # SMS plans' patients have no email: a late enrolment would otherwise catch up on their what-to-expect.
            [{"clinic_id": clinic.id, "first_name": "Pat", "last_name": f"Bench{i}",
              "email": f"p{i}@bench.example" if i >= n_sms else None,
              "phone": f"+1{312 + i // 10_000}555{i % 10_000:04d}", "phone_invalid": False, "timezone": tz,
              "locale": "es" if i % 4 == 3 else "en", "created_at": planned_at} for i in range(total)],
        ))
        plan_ids = list(session.scalars(
            insert(TreatmentPlan).returning(TreatmentPlan.id, sort_by_parameter_order=True),
            [{"patient_id": pid, "condition": "sciatica", "modality": "dry needling", "planned_sessions": 1,
              "cadence_minutes": 7 * 24 * 60, "session_minutes": 45, "reassess_every": 3, "status": PlanStatus.ACTIVE,
              "created_at": planned_at} for pid in patient_ids],
        ))
        # SMS plans: the visit reminder (start - 24h) is due; email plans: what-to-expect (start - 48h) is due.
        starts = [due_at + timedelta(hours=24 if i < n_sms else 48) for i in range(total)]
        session.execute(insert(Appointment), [
            {"plan_id": plan_id, "start_at": start, "end_at": start + timedelta(minutes=45),
             "status": AppointmentStatus.BOOKED, "updated_at": planned_at}
            for plan_id, start in zip(plan_ids, starts, strict=True)
        ])
        session.expire_all()
        enroll_many(session, list(zip(patient_ids, plan_ids, strict=True)), SEQUENCE, enrolled_by="bench")
        clinic_id = clinic.id
    with session_scope() as session:
        due = session.execute(
            select(Message.id, Message.channel, Message.template)
            .where(Message.status == MessageStatus.SCHEDULED, Message.due_at <= due_at,
                   Message.patient_id.in_(patient_ids))
            .order_by(Message.id)
        ).all()
    sms = [mid for mid, channel, template in due if channel.value == "sms" and template == "visit-reminder"]
    email = [mid for mid, channel, template in due if channel.value == "email" and template == "what-to-expect"]
    if len(sms) != n_sms or len(email) != n_email or len(due) != total:
        raise RuntimeError(f"seeding made {len(sms)} SMS and {len(email)} emails due, not {n_sms} and {n_email}")
    return {"clinic_id": clinic_id, "sms": sms, "email": email, "due_at": due_at}


# --- processes ------------------------------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    """The environment for worker/beat subprocesses: this repository importable, plus ``extra``."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return env


def start_worker(env: dict[str, str], logfile: Path, *, concurrency: int = 2, name: str = "w1",
                 pool: str = "prefork", extra: list[str] | None = None) -> subprocess.Popen[bytes]:
    """``celery -A workers.app worker`` in its own process group (so a test can kill the whole tree)."""
    cmd = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--loglevel", "INFO",
           "--concurrency", str(concurrency), "--pool", pool, "--hostname", f"{name}@%h",
           "--without-gossip", "--without-mingle", "--without-heartbeat", *(extra or [])]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logfile.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def start_beat(env: dict[str, str], logfile: Path, workdir: Path) -> subprocess.Popen[bytes]:
    """``celery -A workers.app beat`` with its schedule file in ``workdir``."""
    cmd = [sys.executable, "-m", "celery", "-A", "workers.app", "beat", "--loglevel", "INFO",
           "--schedule", str(workdir / f"beat-{time.monotonic_ns()}"), "--pidfile", ""]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logfile.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Stop a process group started above: ``sig`` first, SIGKILL if it lingers."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # stragglers: pool children outliving their parent
    process.wait(timeout=5)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident set size (VmHWM) in MiB, or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@app.task(name="engage.bench.noop")
def noop() -> None:
    """An empty task on the send queue: what the broker and workers cost with no work at all."""


# --- the benchmark --------------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@contextmanager
def _pipeline(env: dict[str, str], workdir: Path, fake_url: str) -> Iterator[dict[str, Any]]:
    worker = start_worker(env, workdir / "worker.log", concurrency=2, extra=["--include", "tests.bench.bench_delivery"])
    beat = None
    try:
        yield {"worker": worker, "start_beat": lambda: start_beat(env, workdir / "beat.log", workdir)}
    finally:
        for process in (beat, worker):
            if process is not None:
                stop(process)


def _wait_until(predicate: Any, timeout: float, every: float = 0.5, report: Any = None) -> None:
    deadline = time.monotonic() + timeout
    last = 0.0
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step did not finish in time")
        if report and time.monotonic() - last > 5:
            report()
            last = time.monotonic()
        time.sleep(every)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="due messages, half SMS and half email")
    parser.add_argument("--future-rows", type=int, default=1_000_000, help="future rows for the tick-cost figure")
    parser.add_argument("--noop", type=int, default=None, help="empty tasks for the ceiling (default: --n)")
    args = parser.parse_args(argv)
    import redis

    from tests.fakes.remote import spawn_fake_server

    db_url = os.environ.get("ENGAGE_BENCH_DATABASE_URL", DEFAULT_DB)
    redis_url = os.environ.get("ENGAGE_BENCH_REDIS_URL", DEFAULT_REDIS)
    n_sms, n_email = args.n - args.n // 2, args.n // 2
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"engage-bench-delivery-{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"== delivery benchmark: {args.n} due messages ({n_sms} SMS, {n_email} email) ==")
    print(f"database {db_url}; broker {redis_url}; logs in {workdir}")
    prepare_database(db_url)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()

    settings_env = {
        "ENGAGE_DATABASE_URL": db_url, "ENGAGE_BROKER_URL": redis_url, "ENGAGE_REDIS_URL": redis_url,
        "ENGAGE_TICK_SECONDS": "1", "ENGAGE_SMS_RATE_PER_SECOND": "100000", "ENGAGE_EMAIL_RATE_PER_SECOND": "100000",
        "ENGAGE_OUTBOX_DIR": str(workdir / "outbox"), "ENGAGE_PUBLIC_URL": "http://engage.bench",
        "ENGAGE_SECRET_KEY": "bench-secret-key-not-for-production",
    }
    print("rate limits raised for the benchmark: ENGAGE_SMS_RATE_PER_SECOND=ENGAGE_EMAIL_RATE_PER_SECOND=100000; "
          "beat tick 1 s")
    os.environ.update(settings_env)
    from engage.config import get_settings

    get_settings.cache_clear()

    with spawn_fake_server() as fake:
        env = child_env(**settings_env, **fake.env())
        os.environ.update(fake.env())
        get_settings.cache_clear()
        t0 = time.perf_counter()
        seeded = seed_due_messages(n_sms, n_email)
        print(f"seeded {args.n} due messages (plus their plans' future steps) in {time.perf_counter() - t0:.1f}s")
        all_ids = set(seeded["sms"]) | set(seeded["email"])

        with _pipeline(env, workdir, fake.url) as pipe:
            time.sleep(3)  # the worker's pool up before the clock starts
            released = time.time()
            beat = pipe["start_beat"]()
            try:
                def sent() -> int:
                    counts = fake.count()
                    return int(counts["sms"]) + int(counts["email"])

                _wait_until(lambda: sent() >= args.n, timeout=max(600, args.n / 10),
                            report=lambda: print(f"  … {sent()} accepted by the fake after "
                                                 f"{time.time() - released:.0f}s", flush=True))
            finally:
                stop(beat)
            tree = [p for p in process_tree(pipe["worker"].pid) if p != pipe["worker"].pid]
            peaks = {pid: peak_rss_mib(pid) for pid in tree}
            parent_peak = peak_rss_mib(pipe["worker"].pid)
            requests = fake.sms_requests(accepted_only=True) + fake.email_requests(accepted_only=True)
            counts = fake.count()

            noop_n = args.noop or args.n
            noop_rate = _empty_task_ceiling(client, noop_n)

        _report_delivery(seeded, requests, counts, all_ids, released, peaks, parent_peak, db_url)
        print(f"empty Celery tasks, same broker and workers: {noop_n} in {noop_n / noop_rate:.1f}s = "
              f"{noop_rate:.0f} tasks/s (the ceiling for send_message)")
    _tick_cost(args.future_rows)


def _empty_task_ceiling(client: Any, n: int) -> float:
    """Publish ``n`` empty tasks to the send queue and time until the workers drained and acknowledged them."""
    start = time.perf_counter()
    for _ in range(n):
        noop.delay()
    published = time.perf_counter() - start

    def drained() -> bool:
        return client.llen("engage.send") == 0 and client.hlen("unacked") == 0

    _wait_until(drained, timeout=600, every=0.02)
    elapsed = time.perf_counter() - start
    print(f"  (published {n} empty tasks in {published:.1f}s)")
    return n / elapsed


def _report_delivery(seeded: dict[str, Any], requests: list[dict[str, Any]], counts: dict[str, Any],
                     all_ids: set[int], released: float, peaks: dict[int, float | None],
                     parent_peak: float | None, db_url: str) -> None:
    from engage.db import session_scope
    from engage.records.models import Message

    mine = [r for r in requests if r["message_id"] in all_ids]
    due = seeded["due_at"].timestamp()
    # Every message was due before the pipeline started; latency counts from the later of the two.
    start = max(due, released)
    latencies = [r["received_at"] - start for r in mine]
    first, last = min(r["received_at"] for r in mine), max(r["received_at"] for r in mine)
    duplicates = counts["sms_duplicates"] + counts["email_duplicates"]
    with session_scope() as session:
        statuses = dict(session.execute(
            select(Message.status, func.count())
            .where(Message.due_at <= seeded["due_at"], Message.template.in_(["visit-reminder", "what-to-expect"]))
            .group_by(Message.status)
        ).all())
    n = len(all_ids)
    print()
    print(f"delivered: {len(mine)} of {n} accepted by the fake, duplicates: {len(duplicates)}; "
          f"rows: {{{', '.join(f'{k.value}: {v}' for k, v in statuses.items())}}}")
    print(f"throughput: {n / (last - released):.0f} messages/s from beat start to the last acceptance "
          f"({last - released:.1f}s); {n / max(last - first, 1e-9):.0f} messages/s first to last acceptance")
    print(f"latency (due or pipeline start, whichever later, to accepted at the fake): "
          f"p50 {_percentile(latencies, 0.5):.2f}s  p99 {_percentile(latencies, 0.99):.2f}s  "
          f"max {max(latencies):.2f}s  (all {n} due at once: a burst, so this is mostly queueing)")
    pool = ", ".join(f"pid {pid}: {mib:.0f} MiB" for pid, mib in peaks.items() if mib is not None)
    print(f"worker peak memory (VmHWM from /proc; psutil not installed): pool processes {pool}; "
          f"main process {parent_peak or 0:.0f} MiB")


def _tick_cost(future_rows: int) -> None:
    """Time ``claim_due`` (the query a tick runs) with ``future_rows`` scheduled rows due tomorrow or later."""
    from engage.db import get_engine
    from engage.delivery.claim import claim_due

    engine = get_engine()
    with engine.begin() as conn:
        template = conn.execute(text(
            "SELECT enrollment_id, patient_id FROM message ORDER BY id LIMIT 1")).first()
        assert template is not None
        t0 = time.perf_counter()
        conn.execute(text(
            "INSERT INTO message (enrollment_id, patient_id, step_key, occurrence, channel, template, context, "
            "due_at, status, attempts, created_at, updated_at) "
            "SELECT :e, :p, 'bench-future', 'future:' || g, CASE WHEN g % 2 = 0 THEN 'sms' ELSE 'email' END, "
            "'stretch', '{}', now() + interval '1 day' + g * interval '1 second', 'scheduled', 0, now(), now() "
            "FROM generate_series(1, :n) AS g"),
            {"e": template.enrollment_id, "p": template.patient_id, "n": future_rows})
        inserted = time.perf_counter() - t0
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE message"))
        total = conn.scalar(text("SELECT count(*) FROM message"))
    print()
    print(f"== dispatch_due tick cost: {future_rows} future rows inserted in {inserted:.1f}s; {total} rows in all ==")
    empty = []
    for _ in range(50):
        t0 = time.perf_counter()
        assert claim_due() == []
        empty.append(time.perf_counter() - t0)
    print(f"claim with nothing due: median {statistics.median(empty) * 1000:.2f} ms, "
          f"p99 {_percentile(empty, 0.99) * 1000:.2f} ms (50 ticks)")
    full = []
    for _ in range(5):
        with engine.begin() as conn:
            conn.execute(text(
                "UPDATE message SET due_at = now() - interval '1 second' WHERE id IN "
                "(SELECT id FROM message WHERE step_key = 'bench-future' AND status = 'scheduled' "
                "ORDER BY due_at LIMIT 500)"))
        t0 = time.perf_counter()
        got = claim_due(500)
        full.append(time.perf_counter() - t0)
        assert len(got) == 500
    print(f"claim of a full 500-row batch: median {statistics.median(full) * 1000:.1f} ms (5 ticks)")
    with engine.connect() as conn:
        plan = conn.execute(text(
            "EXPLAIN SELECT id FROM message WHERE status = 'scheduled' AND due_at <= now() "
            "AND (next_attempt_at IS NULL OR next_attempt_at <= now()) ORDER BY due_at LIMIT 500 "
            "FOR UPDATE SKIP LOCKED")).scalars().all()
    print("plan: " + " / ".join(line.strip() for line in plan[:3]))


if __name__ == "__main__":
    main()
