"""Benchmark: the denial-of-service attacks of issue 21, each against its target, on PostgreSQL.

    python -m tests.bench.bench_attacks [--patients 100000] [--csv-mb 5] [--slow 99] [--quick]

1. **CSV of bad rows**: ``--csv-mb`` MB of rows that fail (empty names and a duration of ``²``; then rows
   that read well but fail validation, a bad phone), imported with ``engage.sync.csv_import``: seconds until
   the errors are answered. Target: ≤ 5 s (was quadratic: 100 KB took 120 s).
2. **Patient search**: one clinic of ``--patients`` patients (``bench_staff``'s seeding); through the staff
   app (in-process ASGI), a 16 KB query of 4,000 words (refused) and the largest query engage takes
   (6 words; 254 characters): ms each. Target: ≤ 1,000 ms (a 1,500-word query ran over 4 minutes).
3. **Slow bodies**: a real ``engage serve`` (default options); ``--slow`` sockets from 127.0.0.2 send
   ``Content-Length: 100000`` and then a byte every 3 s, for 15 s, while ``/livez`` is asked every 0.5 s
   from 127.0.0.1: its answers and their latency. Target: every one 200 (was 503 throughout).
4. **A webhook receiver that drips**: a status line at one byte every 0.5 s (each read inside the
   timeout): seconds until the post gives up. Target: ≤ ``ENGAGE_WEBHOOK_TIMEOUT_SECONDS`` (10) + 1.

The database (``ENGAGE_BENCH_DATABASE_URL``, default ``postgresql://postgres@127.0.0.1:5432/engage_bench``)
is created if missing and its schema dropped and rebuilt with the migrations.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from engage.db import session_scope
from tests.bench.bench_staff import PASSWORD, seed
from tests.bench.database import use_bench_database
from tests.bench.measure import machine

ROOT = Path(__file__).resolve().parents[2]
HEADER = "patient_external_id,first_name,last_name,phone,email,appointment_external_id,start,duration\n"


def _verdict(ok: bool) -> str:
    return "meets the target" if ok else "MISSES the target"


def bench_csv(clinic_id: int, megabytes: float) -> None:
    from engage.sync.csv_import import import_appointments
    from engage.sync.records import SyncErrors

    size = int(megabytes * 1_000_000)
    for kind, row in (
        ("unreadable rows", "P{n},,,,,A{n},,²\n"),
        ("rows failing validation", "Q{n},Bo,Lee,12,,B{n},2030-01-07T09:00,45\n"),
    ):
        rows, total, n = [], len(HEADER), 0
        while total < size:
            line = row.format(n=n)
            rows.append(line)
            total += len(line.encode())
            n += 1
        text = HEADER + "".join(rows)
        with session_scope() as session:
            started = time.perf_counter()
            try:
                import_appointments(session, clinic_id, text, actor="bench")
            except SyncErrors as exc:
                errors = len(exc.sync_errors)
            seconds = time.perf_counter() - started
            session.rollback()
        print(
            f"CSV import, {len(text.encode()) / 1e6:.1f} MB of {n} {kind}: answered with {errors} errors in "
            f"{seconds:.2f} s ({_verdict(seconds <= 5)} of 5 s)",
            flush=True,
        )


def bench_search(patients: int) -> None:
    from fastapi.testclient import TestClient

    from engage.web.app import create_app

    client = TestClient(create_app())
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    client.post("/login", data={"email": "desk@bench.example", "password": PASSWORD, "csrf_token": token.group(1)})
    for name, query in (
        ("16 KB, 4,000 words", "ana " * 4000),
        ("6 words (the most taken)", "a b c d e f"),
        ("6 words, 254 characters", " ".join(["garcia" + "x" * 36] * 6)[:254]),
        ("6 words that each match many", "a a a a a a"),
    ):
        timings, status = [], 0
        for _ in range(5):
            started = time.perf_counter()
            answer = client.get("/patients", params={"q": query})
            timings.append((time.perf_counter() - started) * 1000)
            status = answer.status_code
        worst = max(timings)
        print(
            f"patient search over {patients} patients, {name}: answered {status} "
            f"(refused: {'a search is at most' in answer.text}), median {statistics.median(timings):.0f} ms, "
            f"max {worst:.0f} ms ({_verdict(worst <= 1000)} of 1,000 ms)",
            flush=True,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_slow_bodies(url: str, slow: int, seconds: float = 15.0) -> None:
    port = _free_port()
    env = {**os.environ, "ENGAGE_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engage", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                httpx.get(base + "/livez", timeout=1)
                break
            time.sleep(0.1)
        attackers = []
        for _ in range(slow):
            conn = socket.socket()
            conn.bind(("127.0.0.2", 0))
            with contextlib.suppress(OSError):
                conn.connect(("127.0.0.1", port))
                conn.sendall(
                    b"POST /login HTTP/1.1\r\nHost: engage.test\r\n"
                    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n"
                )
            attackers.append(conn)
        started, last_drip = time.monotonic(), time.monotonic()
        statuses, latencies = [], []
        while time.monotonic() - started < seconds:
            t0 = time.perf_counter()
            try:
                statuses.append(httpx.get(base + "/livez", timeout=5).status_code)
            except httpx.TransportError as exc:
                statuses.append(type(exc).__name__)  # type: ignore[arg-type]
            latencies.append((time.perf_counter() - t0) * 1000)
            if time.monotonic() - last_drip >= 3:
                last_drip = time.monotonic()
                for conn in attackers:
                    with contextlib.suppress(OSError):
                        conn.send(b"a")
            time.sleep(0.5)
        for conn in attackers:
            conn.close()
        ok = set(statuses) == {200}
        print(
            f"/livez during {slow} slow bodies for {seconds:.0f} s: {len(statuses)} asked, answers "
            f"{sorted(set(map(str, statuses)))}, latency median {statistics.median(latencies):.0f} ms, "
            f"max {max(latencies):.0f} ms ({_verdict(ok)}: all 200)",
            flush=True,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def bench_dripping_receiver() -> None:
    from engage.config import get_settings
    from engage.integrations import deliver, endpoints
    from tests.fakes.webhook_receiver import WebhookReceiver

    os.environ["ENGAGE_WEBHOOK_ALLOW_LOCAL"] = "1"  # the receiver listens on this machine
    get_settings.cache_clear()
    limit = get_settings().webhook_timeout_seconds
    with WebhookReceiver() as receiver:
        receiver.answer([{"drip": 0.5}])  # 36 bytes: 18 s in all, each read 0.5 s
        started = time.perf_counter()
        answer = deliver.post_event(deliver.Post(1, 1, 1, "evt_bench", receiver.url, endpoints.new_secret(), "{}"))
        seconds = time.perf_counter() - started
    print(
        f"webhook post to a receiver dripping a byte every 0.5 s: gave up after {seconds:.1f} s with "
        f"{answer.error!r} ({_verdict(seconds <= limit + 1)} of {limit:.0f} s + 1)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--csv-mb", type=float, default=5.0)
    parser.add_argument("--slow", type=int, default=99, help="slow-body sockets")
    parser.add_argument("--quick", action="store_true", help="10,000 patients, a 1 MB CSV, 8 s of slow bodies")
    args = parser.parse_args()
    if args.quick:
        args.patients, args.csv_mb = 10_000, 1.0
    os.environ.setdefault("ENGAGE_SECRET_KEY", "bench-secret-key-0123456789")
    print(machine(), flush=True)
    url = use_bench_database()
    t0 = time.perf_counter()
    clinic_id = seed(url, args.patients, 1000)
    print(f"seeded {args.patients} patients in {time.perf_counter() - t0:.1f}s", flush=True)
    bench_csv(clinic_id, args.csv_mb)
    bench_search(args.patients)
    bench_slow_bodies(url, args.slow, 8.0 if args.quick else 15.0)
    bench_dripping_receiver()
    print(machine(), flush=True)


if __name__ == "__main__":
    main()
