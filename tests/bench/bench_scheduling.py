"""Benchmark: enrolment throughput and the cost of reconciling one moved appointment, on PostgreSQL.

    python -m tests.bench.bench_scheduling [--patients 10000] [--rows 1000000] [--single 500]

1. Seeds one clinic, ``--patients`` patients with a six-session weekly plan each (plus
   ``--single`` more), untimed.
2. Enrols the ``--patients`` plans into ``dry-needling-sciatica`` with
   ``engage.schedule.enrollments.enroll_many`` in batches of ``--batch``, one transaction a batch:
   **enrolments/second** (each enrolment plans and writes its 33 messages).
   Then enrols the ``--single`` plans one at a time with ``enroll()``, one transaction
   each (what the CLI and the web do): enrolments/second for that path too.
3. Grows the outbox to ``--rows`` rows (filler history rows via COPY, untimed), ANALYZEs,
   then moves one appointment with ``engage.records.move_appointment`` (which calls
   ``reconcile_plan``) and commits, ``--repeat`` times: **median and max ms**.

The database (``ENGAGE_BENCH_DATABASE_URL``, default
``postgresql://postgres@127.0.0.1:5432/engage_bench``) is created if missing and its
schema dropped and rebuilt with the migrations.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from engage.clock import utcnow
from engage.db import make_engine
from engage.records import clinics
from engage.records.models import Appointment, Clinic, Enrollment, Message, Patient, TreatmentPlan
from engage.schedule import appointments
from engage.schedule.enrollments import enroll, enroll_many
from tests.bench.database import use_bench_database

SEQUENCE = "dry-needling-sciatica"
SESSIONS = 6


def seed(session: Session, patients: int) -> list[tuple[int, int]]:
    """One clinic, ``patients`` patients, each with a weekly six-session plan: [(patient id, plan id)]."""
    clinic = clinics.create_clinic(
        session,
        name="Bench Clinic",
        timezone="America/New_York",
        address="1 Bench St, Springfield",
        email="bench@example.com",
        actor="test",
    )
    now = utcnow()
    patient_ids = list(
        session.scalars(
            insert(Patient).returning(Patient.id, sort_by_parameter_order=True),
            [
                {
                    "clinic_id": clinic.id,
                    "first_name": "P",
                    "last_name": str(i),
                    "email": f"p{i}@example.com",
                    "phone": f"+1202555{i % 10000:04d}",
                    "phone_invalid": False,
                    "timezone": None,
                    "locale": "en",
                    "created_at": now,
                }
                for i in range(patients)
            ],
        )
    )
    plan_ids = list(
        session.scalars(
            insert(TreatmentPlan).returning(TreatmentPlan.id, sort_by_parameter_order=True),
            [
                {
                    "patient_id": pid,
                    "condition": "sciatica",
                    "modality": "dry needling",
                    "planned_sessions": SESSIONS,
                    "cadence_minutes": 7 * 1440,
                    "session_minutes": 45,
                    "reassess_every": 3,
                    "status": "active",
                    "created_at": now,
                }
                for pid in patient_ids
            ],
        )
    )
    first = (now + timedelta(days=10)).replace(hour=14, minute=0, second=0, microsecond=0)
    appointments: list[dict[str, Any]] = []
    for n, plan_id in enumerate(plan_ids):
        start0 = first + timedelta(minutes=30 * (n % 16))  # spread over the day
        for k in range(SESSIONS):
            start = start0 + timedelta(days=7 * k)
            appointments.append(
                {
                    "plan_id": plan_id,
                    "start_at": start,
                    "end_at": start + timedelta(minutes=45),
                    "status": "booked",
                    "updated_at": now,
                }
            )
    for i in range(0, len(appointments), 10_000):
        session.execute(insert(Appointment), appointments[i : i + 10_000])
    return list(zip(patient_ids, plan_ids, strict=True))


def fill_outbox(session: Session, rows: int) -> int:
    """Add sent-history filler rows until the outbox holds ``rows``; returns how many were added."""
    have = session.scalar(select(func.count()).select_from(Message)) or 0
    missing = max(0, rows - have)
    if not missing:
        return 0
    enrollments = session.execute(select(Enrollment.id, Enrollment.patient_id)).all()
    sent_at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    raw = session.connection().connection.driver_connection
    assert raw is not None
    columns = (
        "enrollment_id, patient_id, step_key, occurrence, channel, template, context, due_at, status, "
        "attempts, created_at, updated_at, sent_at"
    )
    with raw.cursor() as cursor, cursor.copy(f"COPY message ({columns}) FROM STDIN") as copy:
        for i in range(missing):
            enrollment_id, patient_id = enrollments[i % len(enrollments)]
            due = sent_at + timedelta(minutes=i % 500_000)
            copy.write_row(
                (enrollment_id, patient_id, "history", f"h:{i}", "sms", "stretch", "{}", due, "sent", 1, due, due, due)
            )
    return missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--single", type=int, default=500, help="enrolments done one at a time with enroll()")
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="1,000 patients, 100,000 rows, 100 single enrolments")
    args = parser.parse_args()
    if args.quick:
        args.patients, args.rows, args.single, args.repeat = 1_000, 100_000, 100, 3
    url = use_bench_database()
    engine = make_engine(url)
    new_session = sessionmaker(engine, expire_on_commit=False)

    with new_session() as session:
        t0 = time.perf_counter()
        pairs = seed(session, args.patients + args.single)
        session.commit()
        print(f"seeded {len(pairs)} patients x {SESSIONS} sessions in {time.perf_counter() - t0:.1f}s")
    bulk, single = pairs[: args.patients], pairs[args.patients :]

    t0 = time.perf_counter()
    for start in range(0, len(bulk), args.batch):
        with new_session() as session:
            enroll_many(session, bulk[start : start + args.batch], SEQUENCE, enrolled_by="bench")
            session.commit()
    elapsed = time.perf_counter() - t0
    with new_session() as session:
        written = session.scalar(select(func.count()).select_from(Message)) or 0
    print(
        f"enrol (bulk, batches of {args.batch}): {len(bulk)} enrolments, {written} messages in {elapsed:.2f}s"
        f" = {len(bulk) / elapsed:,.0f} enrolments/s"
    )

    if single:
        t0 = time.perf_counter()
        for patient_id, plan_id in single:
            with new_session() as session:
                enroll(session, patient_id, plan_id, SEQUENCE, enrolled_by="bench")
                session.commit()
        elapsed = time.perf_counter() - t0
        print(
            f"enrol (one at a time, a transaction each): {len(single)} enrolments in {elapsed:.2f}s"
            f" = {len(single) / elapsed:,.0f} enrolments/s"
        )

    with new_session() as session:
        t0 = time.perf_counter()
        added = fill_outbox(session, args.rows)
        session.commit()
        session.execute(text("ANALYZE"))
        session.commit()
        total = session.scalar(select(func.count()).select_from(Message)) or 0
        print(f"outbox filled with {added} history rows in {time.perf_counter() - t0:.1f}s: {total:,} rows")
        plan_id = bulk[len(bulk) // 2][1]
        appointment_id = session.scalars(
            select(Appointment.id).where(Appointment.plan_id == plan_id).order_by(Appointment.start_at).offset(2)
        ).first()
        assert appointment_id is not None

    timings = []
    for i in range(args.repeat):
        with new_session() as session:
            appointment = session.get_one(Appointment, appointment_id)
            to = appointment.start_at + timedelta(hours=1 if i % 2 == 0 else -1)
            t0 = time.perf_counter()
            appointments.move_appointment(session, appointment_id, to, actor="bench")
            session.commit()
            timings.append((time.perf_counter() - t0) * 1000)
    print(
        f"reconcile one moved appointment with {total:,} outbox rows (move + reconcile + commit): "
        f"median {statistics.median(timings):.1f} ms, max {max(timings):.1f} ms over {len(timings)} moves"
    )
    with new_session() as session:
        clinic_count = session.scalar(select(func.count()).select_from(Clinic))
        assert clinic_count == 1
    engine.dispose()


if __name__ == "__main__":
    main()
