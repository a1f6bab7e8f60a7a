"""Benchmark: CSV import of appointments, then a re-import with some moved and cancelled, on PostgreSQL.

    python -m tests.bench.bench_sync [--patients 2000] [--appointments 10000] [--moved 0.05] [--cancelled 0.02]

1. Writes a CSV of ``--appointments`` appointments for ``--patients`` patients (weekly visits,
   all in ``dry-needling-sciatica``) and imports it with ``engage.sync.csv_import`` in one
   transaction: **appointments/second**, with the patients, plans, enrolments and messages made.
2. Re-imports the same file: it must change nothing (every count "unchanged", no message touched).
3. Re-imports with ``--moved`` of the appointments an hour and a day later and ``--cancelled``
   cancelled: **appointments/second**, and the rows touched (only the changed appointments and
   their messages).

The database (``ENGAGE_BENCH_DATABASE_URL``, default ``postgresql://postgres@127.0.0.1:5432/engage_bench``)
is created if missing and its schema dropped and rebuilt with the migrations.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engage.clock import utcnow
from engage.db import make_engine
from engage.records import clinics
from engage.records.models import Message
from engage.sync.csv_import import import_appointments
from tests.bench.database import use_bench_database

HEADER = "patient_external_id,first_name,last_name,phone,email,appointment_external_id,start,duration,status,sequence"
SEQUENCE = "dry-needling-sciatica"


def make_rows(patients: int, appointments: int) -> list[list[str]]:
    per_patient = max(1, appointments // patients)
    first_day = utcnow().date() + timedelta(days=3)
    rows: list[list[str]] = []
    for p in range(patients):
        for n in range(per_patient):
            if len(rows) == appointments:
                break
            day = first_day + timedelta(days=p % 5 + 7 * n)
            start = f"{day.isoformat()}T{9 + p % 8:02d}:00"
            rows.append(
                [
                    f"P{p}",
                    f"First{p}",
                    f"Last{p}",
                    f"+1415{5550000 + p:07d}"[-12:],
                    f"p{p}@bench.example",
                    f"A{p}-{n}",
                    start,
                    "45",
                    "booked",
                    SEQUENCE,
                ]
            )
    return rows


def as_csv(rows: list[list[str]]) -> str:
    return HEADER + "\n" + "\n".join(",".join(row) for row in rows) + "\n"


def timed_import(new_session: sessionmaker[Session], clinic_id: int, text: str) -> tuple[float, dict[str, Any]]:
    with new_session() as session:
        started = time.perf_counter()
        report = import_appointments(session, clinic_id, text, actor="bench")
        session.commit()
        return time.perf_counter() - started, report.as_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=2_000)
    parser.add_argument("--appointments", type=int, default=10_000)
    parser.add_argument("--moved", type=float, default=0.05)
    parser.add_argument("--cancelled", type=float, default=0.02)
    parser.add_argument("--quick", action="store_true", help="200 patients, 1,000 appointments")
    args = parser.parse_args()
    if args.quick:
        args.patients, args.appointments = 200, 1_000
    url = use_bench_database()
    engine = make_engine(url)
    new_session = sessionmaker(engine, expire_on_commit=False)
    with new_session() as session:
        clinic_id = clinics.create_clinic(
            session,
            name="Bench Clinic",
            timezone="America/New_York",
            address="1 Bench St",
            email="bench@example.com",
            actor="test",
        ).id
        session.commit()

    rows = make_rows(args.patients, args.appointments)
    seconds, first = timed_import(new_session, clinic_id, as_csv(rows))
    with new_session() as session:
        messages = session.scalar(select(func.count()).select_from(Message))
    print(
        f"first import: {len(rows)} appointments, {first['patients_created']} patients, "
        f"{first['enrollments_created']} enrolments, {messages} messages in {seconds:.2f}s: "
        f"{len(rows) / seconds:,.0f} appointments/s"
    )

    seconds, same = timed_import(new_session, clinic_id, as_csv(rows))
    touched = same["appointments_created"] + same["appointments_moved"] + same["appointments_status_changed"]
    changed_messages = sum(v for k, v in same["messages"].items() if k != "unchanged")
    print(
        f"same file again: {seconds:.2f}s ({len(rows) / seconds:,.0f} appointments/s); appointments touched: "
        f"{touched}, patients updated: {same['patients_updated']}, messages changed: {changed_messages}"
    )

    picked = random.Random(12).sample(range(len(rows)), int(len(rows) * (args.moved + args.cancelled)))
    moved, cancelled = picked[: int(len(rows) * args.moved)], picked[int(len(rows) * args.moved) :]
    for i in moved:
        day, _, clock = rows[i][6].partition("T")  # a day and an hour later
        later = date.fromisoformat(day) + timedelta(days=1)
        rows[i][6] = f"{later.isoformat()}T{int(clock[:2]) + 1:02d}:00"
    for i in cancelled:
        rows[i][8] = "cancelled"
    seconds, changed = timed_import(new_session, clinic_id, as_csv(rows))
    changed_messages = {k: v for k, v in changed["messages"].items() if v and k != "unchanged"}
    print(
        f"re-import with {len(moved)} moved and {len(cancelled)} cancelled: {seconds:.2f}s "
        f"({len(rows) / seconds:,.0f} appointments/s); appointments moved {changed['appointments_moved']}, "
        f"cancelled {changed['appointments_status_changed']}, unchanged {changed['appointments_unchanged']}; "
        f"messages changed: {changed_messages}"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
