"""Outgoing webhooks benchmark on PostgreSQL: what an event costs the send path, and how fast events go out.

    python -m tests.bench.bench_outgoing_webhooks [--events 2000] [--latency 0.2] [--jitter 0.05] [--quick]

1. **Emission**: ``emit(message.sent)`` for one message per transaction, as the send path does, with no
   endpoint and with one: milliseconds per message (the price every send pays).
2. **Delivery**: ``--events`` owed events posted by one process (``deliver_due`` on its threads) to a local
   receiver that answers after ``--latency`` ± ``--jitter`` seconds: events per second and the time the last
   one waited. Each event must arrive exactly once.

Database: ``ENGAGE_BENCH_DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/engage_bench``),
rebuilt from the migrations: run it alone, as ``python -m tests.bench`` does.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter

from sqlalchemy import delete, text

from engage.db import session_scope
from engage.records.models import Patient
from engage.records.outgoing_webhooks import EventType, WebhookEvent, emit
from tests.bench.bench_webhooks import seed_patients, seed_sent_emails
from tests.bench.database import use_bench_database
from tests.fakes.webhook_receiver import WebhookReceiver


def emit_each(message_ids: list[int]) -> tuple[float, float]:
    """Wall and CPU seconds one ``emit`` adds to a send's result transaction (an UPDATE of the message, then
    commit), measured against the same transactions without it."""
    touch = text("UPDATE message SET updated_at = now() WHERE id = :id")

    def run(emitting: bool) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        for message_id in message_ids:
            with session_scope() as session:
                session.execute(touch, {"id": message_id})
                if emitting:
                    emit(session, EventType.MESSAGE_SENT, [message_id])
        return time.perf_counter() - wall, time.process_time() - cpu

    run(True)  # warm up: connections, compiled statements
    rounds = [(run(False), run(True)) for _ in range(4)]  # interleaved, so a busy moment hits both sides
    bare_wall, bare_cpu = (sum(r[0][i] for r in rounds) for i in (0, 1))
    wall, cpu = (sum(r[1][i] for r in rounds) for i in (0, 1))
    return (wall - bare_wall) / (4 * len(message_ids)), (cpu - bare_cpu) / (4 * len(message_ids))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--jitter", type=float, default=0.05)
    parser.add_argument("--quick", action="store_true", help="400 events")
    args = parser.parse_args()
    count = 400 if args.quick else args.events
    os.environ["ENGAGE_WEBHOOK_ALLOW_LOCAL"] = "1"  # the receiver listens on this machine
    use_bench_database()
    from engage.integrations import deliver, endpoints

    pairs = seed_patients()
    ids = seed_sent_emails(pairs, count, "hooks")
    with WebhookReceiver(latency=args.latency, jitter=args.jitter) as receiver:
        warm = ids[: min(400, count)]
        without = emit_each(warm)
        with session_scope() as session:
            clinic_id = session.get_one(Patient, pairs[0][0]).clinic_id
            endpoints.create_endpoint(session, clinic_id, receiver.url, "bench", actor="bench")
        with_one = emit_each(warm)
        print(
            f"emit message.sent adds to a send's result transaction: {without[0] * 1000:.2f} ms "
            f"({without[1] * 1000:.2f} ms CPU) without an endpoint, {with_one[0] * 1000:.2f} ms "
            f"({with_one[1] * 1000:.2f} ms CPU) with one"
        )

        with session_scope() as session:
            session.execute(delete(WebhookEvent))
            emit(session, EventType.MESSAGE_SENT, ids)
        started = time.perf_counter()
        counts: Counter[str] = Counter()
        while True:
            done = deliver.deliver_due()
            counts.update(done)
            if not any(done.values()):
                break
        elapsed = time.perf_counter() - started
        received = Counter(p.headers["webhook-id"] for p in receiver.posts())
    print(
        f"deliver {count} events at {args.latency * 1000:.0f} ± {args.jitter * 1000:.0f} ms endpoint latency, "
        f"one process ({deliver.THREADS} threads): {elapsed:.1f} s = {count / elapsed:.0f} events/s; "
        f"{dict(counts)}; received {len(received)} distinct, {sum(received.values()) - len(received)} repeated"
    )


if __name__ == "__main__":
    main()
