"""SendGrid event webhook benchmark: one batch of 10,000 events on PostgreSQL (target: under 2 s).

    python -m tests.bench.bench_webhooks [--events 10000] [--per-message 4]

Seeds one clinic, 250 patients and ``events / per-message`` sent emails per round
(untimed), then times three things, each one transaction as in production:

1. ``handle_events`` on a batch of ``--events`` events (``processed``, ``delivered``,
   ``open``, ``click`` per message; one message in a hundred bounces instead of being
   delivered, opting its patient out of email): **seconds and events/second**;
2. the same batch again (every event a duplicate: nothing changes);
3. a fresh batch of the same shape POSTed through the app with a real ECDSA
   signature (``TestClient``): the whole request, signature check and JSON included
   (``ENGAGE_MAX_REQUEST_BYTES`` raised for it: 10,000 events are about 2.3 MB).

The database (``ENGAGE_BENCH_DATABASE_URL``, default
``postgresql://postgres@127.0.0.1:5432/engage_bench``) is created if missing and its
schema dropped and rebuilt with the migrations: run it alone, as ``python -m tests.bench`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, select

from engage.clock import utcnow
from engage.config import get_settings
from engage.db import session_scope
from engage.records import clinics, patients, plans
from engage.records.models import Channel, ConsentEvent, Enrollment, Message, MessageStatus, Patient
from tests.bench.database import use_bench_database

PATIENTS = 250
WORDS = ("processed", "delivered", "open", "click")


def seed_patients() -> list[tuple[int, int]]:
    """One clinic and PATIENTS patients, each with a plan and an enrolment; returns (patient id, enrolment id)."""
    with session_scope() as session:
        clinic = clinics.create_clinic(
            session,
            name="Bench Clinic",
            timezone="America/New_York",
            address="1 Main St, Springfield, IL 62701",
            email="front@bench.example",
            actor="test",
        )
        pairs = []
        for i in range(PATIENTS):
            patient = patients.add_patient(
                session,
                clinic_id=clinic.id,
                first_name="Bench",
                last_name=f"P{i}",
                email=f"p{i}@bench.example",
                actor="test",
            ).patient
            plan = plans.create_plan(
                session,
                patient_id=patient.id,
                condition="sciatica",
                modality="dry needling",
                first=utcnow() + timedelta(days=3),
                sessions=1,
                every=timedelta(days=7),
                actor="test",
            )
            enrollment = Enrollment(
                patient_id=patient.id, plan_id=plan.id, sequence_key="dry-needling-sciatica", created_at=utcnow()
            )
            session.add(enrollment)
            session.flush()
            pairs.append((patient.id, enrollment.id))
        return pairs


def seed_sent_emails(pairs: list[tuple[int, int]], count: int, tag: str) -> list[int]:
    """``count`` emails in ``sent`` with a SendGrid id, spread over the patients; returns their ids."""
    now = utcnow()
    with session_scope() as session:
        clinic_id = session.scalars(select(Patient.clinic_id).where(Patient.id == pairs[0][0])).one()
    rows = [
        {
            "enrollment_id": pairs[i % len(pairs)][1],
            "patient_id": pairs[i % len(pairs)][0],
            "clinic_id": clinic_id,
            "step_key": "bench",
            "occurrence": f"{tag}:{i}",
            "channel": Channel.EMAIL,
            "template": "what-to-expect",
            "context": {},
            "due_at": now - timedelta(hours=1),
            "status": MessageStatus.SENT,
            "attempts": 1,
            "provider": "sendgrid",
            "provider_message_id": f"{tag}x{i}",
            "created_at": now,
            "updated_at": now,
            "sent_at": now,
        }
        for i in range(count)
    ]
    with session_scope() as session:
        return list(session.scalars(insert(Message).returning(Message.id), rows))


def batch_for(message_ids: list[int], per_message: int, tag: str) -> list[dict[str, Any]]:
    """SendGrid-shaped events: ``per_message`` per message, one message in a hundred bouncing."""
    events = []
    for n, message_id in enumerate(message_ids):
        for word in WORDS[:per_message]:
            if word == "delivered" and n % 100 == 0:
                word = "bounce"
            events.append(
                {
                    "email": "someone@bench.example",
                    "timestamp": int(time.time()),
                    "event": word,
                    "sg_event_id": f"{tag}-{word}-{message_id}",
                    "engage_message_id": str(message_id),
                    "sg_message_id": f"{tag}x{n}.filterdrecv-bench-1",
                    "category": ["what-to-expect"],
                    **(
                        {"type": "bounce", "reason": "550 5.1.1 user unknown", "status": "5.1.1"}
                        if word == "bounce"
                        else {}
                    ),
                }
            )
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--per-message", type=int, default=4, choices=range(1, len(WORDS) + 1))
    args = parser.parse_args()
    use_bench_database()
    from engage.web.webhooks.sendgrid import handle_events  # after the settings point at the bench database

    pairs = seed_patients()
    per_round = args.events // args.per_message

    ids = seed_sent_emails(pairs, per_round, "lib")
    batch = batch_for(ids, args.per_message, "lib")
    t0 = time.perf_counter()
    new = handle_events(batch)
    elapsed = time.perf_counter() - t0
    print(
        f"handle_events: {len(batch)} events ({new} new) for {len(ids)} messages in {elapsed:.2f}s"
        f" = {len(batch) / elapsed:,.0f} events/s (target: under 2 s)"
    )
    t0 = time.perf_counter()
    again = handle_events(batch)
    print(f"handle_events, the same batch again: {again} new in {time.perf_counter() - t0:.2f}s")
    with session_scope() as session:
        delivered = (
            session.scalar(select(func.count()).select_from(Message).where(Message.status == MessageStatus.DELIVERED))
            or 0
        )
        opted_out = session.scalar(select(func.count()).select_from(ConsentEvent)) or 0
    print(f"  {delivered} messages delivered, {opted_out} patients opted out of email by bounces")

    http_post(pairs, per_round, args.per_message)


def http_post(pairs: list[tuple[int, int]], per_round: int, per_message: int) -> None:
    """A fresh batch through the app: signature check, JSON parsing and all."""
    from fastapi.testclient import TestClient

    from engage.web.app import create_app
    from tests.fixtures.webhooks.support import SendGridKey

    key = SendGridKey()
    os.environ["SENDGRID_WEBHOOK_PUBLIC_KEY"] = key.public_key
    os.environ["ENGAGE_MAX_REQUEST_BYTES"] = str(10_000_000)  # 10,000 events is about 2.3 MB, over the 1 MB default
    get_settings.cache_clear()
    ids = seed_sent_emails(pairs, per_round, "http")
    body = json.dumps(batch_for(ids, per_message, "http")).encode()
    with TestClient(create_app()) as http:
        t0 = time.perf_counter()
        response = http.post("/webhooks/sendgrid/events", content=body, headers=key.headers(body))
        elapsed = time.perf_counter() - t0
    print(
        f"POST /webhooks/sendgrid/events: {len(body) / 1e6:.1f} MB, HTTP {response.status_code}"
        f" ({response.text}) in {elapsed:.2f}s"
    )


if __name__ == "__main__":
    main()
