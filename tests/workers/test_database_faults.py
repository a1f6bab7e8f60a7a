"""Real Celery workers when PostgreSQL refuses connections: a role with a connection limit, or none at all.

The workers connect as a PostgreSQL role of this test's own (``CREATE ROLE … CONNECTION LIMIT n``);
the test changes its limit to refuse or allow connections and drops the role afterwards. Beat
and the test itself use the superuser. Timings are scaled down as in ``test_faults.py``.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, create_engine, make_url, select, text
from twilio.request_validator import RequestValidator

from engage.config import get_settings
from engage.conversation.consent import current_consent
from engage.db import normalise_url, session_scope
from engage.delivery import claim, spool
from engage.records.models import Channel, Clinic, ConsentState, InboundMessage, Message, MessageStatus, Patient
from tests.fakes.provider_server import FakeProviders
from tests.fakes.remote import FAKE_AUTH_TOKEN
from tests.workers.test_faults import (  # noqa: F401 - fixtures
    Pipeline,
    PrivateRedis,
    assert_each_sent_once,
    fake,
    pipeline_factory,
    private_redis,
    seed,
    statuses,
    wait_for,
    wait_until_settled,
)

pytestmark = pytest.mark.workers


class LimitedRole:
    """A login role of this test's own on the test database, whose connection limit the test sets."""

    def __init__(self, pg_url: str) -> None:
        self.name = f"engage_limited_{os.getpid()}"
        self.admin: Engine = create_engine(normalise_url(pg_url), isolation_level="AUTOCOMMIT")
        self.url = make_url(pg_url).set(username=self.name).render_as_string(hide_password=False)
        self.database = make_url(pg_url).database

    def create(self, limit: int) -> None:
        self.drop()
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE ROLE "{self.name}" LOGIN CONNECTION LIMIT {int(limit)}'))
            conn.execute(text(f'GRANT CONNECT ON DATABASE "{self.database}" TO "{self.name}"'))
            conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{self.name}"'))
            conn.execute(text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{self.name}"'))
            conn.execute(text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{self.name}"'))

    def limit(self, n: int, *, disconnect: bool = False) -> None:
        """Set the connection limit (0: refuse every new connection); ``disconnect`` also ends open ones."""
        with self.admin.connect() as conn:
            conn.execute(text(f'ALTER ROLE "{self.name}" CONNECTION LIMIT {int(n)}'))
            if disconnect:
                conn.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"), {"r": self.name}
                )

    def sessions_opened(self) -> int:
        """Sessions ever opened on the test database (PostgreSQL's cumulative ``pg_stat_database.sessions``)."""
        with self.admin.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            return int(
                conn.scalar(text("SELECT sessions FROM pg_stat_database WHERE datname = :d"), {"d": self.database})
            )

    def drop(self) -> None:
        with self.admin.connect() as conn:
            if conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": self.name}):
                conn.execute(text(f'ALTER ROLE "{self.name}" CONNECTION LIMIT 0'))
                conn.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"), {"r": self.name}
                )
                conn.execute(text(f'DROP OWNED BY "{self.name}"'))
                conn.execute(text(f'DROP ROLE "{self.name}"'))


@pytest.fixture
def role(pg_url: str) -> Iterator[LimitedRole]:
    limited = LimitedRole(pg_url)
    try:
        yield limited
    finally:
        limited.drop()
        limited.admin.dispose()


def _logs(tmp_path: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))


THREADS = 16


def test_a_burst_opens_no_more_connections_than_sends_in_flight(
    pipeline_factory: Callable[..., Pipeline],  # noqa: F811
    private_redis: PrivateRedis,  # noqa: F811
    fake: FakeProviders,  # noqa: F811
    role: LimitedRole,
    tmp_path: Path,
) -> None:
    ids = seed(300, 0)
    fake.add_faults("sms", [{"delay": 0.02}] * 300)
    # Two pool processes of THREADS send threads each: room for exactly their pools, and two spare.
    role.create(limit=2 * THREADS + 2)
    workers = pipeline_factory(
        private_redis.url,
        ENGAGE_DATABASE_URL=role.url,
        ENGAGE_SEND_THREADS=str(THREADS),
        ENGAGE_SEND_BATCH=str(THREADS),
    )
    beat = pipeline_factory(private_redis.url)
    before = role.sessions_opened()
    beat.beat()
    workers.worker("w1", concurrency=2)
    wait_until_settled(ids, timeout=120)
    workers.stop_all()
    beat.stop_all()
    time.sleep(1.5)  # the server's statistics are flushed about once a second

    assert_each_sent_once(workers, ids, max_unknown=0)
    opened = role.sessions_opened() - before
    # Each pool process keeps one connection per send thread and never opens a short-lived one beside them
    # (the old default, 10 + 20 overflow, opened and closed a connection for most sends of a burst).
    assert opened <= 2 * THREADS + 4, f"{opened} connections opened for {2 * THREADS} sends in flight"
    assert "too many connections" not in _logs(tmp_path)


def test_sends_refused_a_connection_go_back_for_the_next_tick_not_the_reaper(
    pipeline_factory: Callable[..., Pipeline],  # noqa: F811
    private_redis: PrivateRedis,  # noqa: F811
    fake: FakeProviders,  # noqa: F811
    role: LimitedRole,
    tmp_path: Path,
) -> None:
    ids = seed(120, 0)
    fake.add_faults("sms", [{"delay": 0.02}] * 120)
    # Two connections for three pool processes: a send batch holds one connection at a time (its take, its
    # results), so the third process's batches find none.
    role.create(limit=2)
    workers = pipeline_factory(
        private_redis.url,
        ENGAGE_DATABASE_URL=role.url,
        ENGAGE_SEND_THREADS="4",
        ENGAGE_SEND_BATCH="4",
        # The reaper would take a queued row back only after ten minutes: whatever settles sooner was put back.
        ENGAGE_STALE_QUEUED_SECONDS="600",
        ENGAGE_STALE_SENDING_SECONDS="600",
        ENGAGE_DB_POOL_TIMEOUT_SECONDS="1",
    )
    beat = pipeline_factory(private_redis.url, ENGAGE_STALE_QUEUED_SECONDS="600", ENGAGE_STALE_SENDING_SECONDS="600")
    beat.beat()
    workers.worker("w1", concurrency=3)
    wait_until_settled(ids, timeout=150)

    assert_each_sent_once(workers, ids, max_unknown=0)
    logs = _logs(tmp_path)
    assert "put back for the next tick" in logs, "no send was refused a connection: the test tested nothing"
    assert "re-enqueued" in logs


def _inbound(body: str, from_phone: str, to_phone: str, sid: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": from_phone,
        "To": to_phone,
        "Body": body,
        "NumMedia": "0",
    }


def test_a_stop_received_while_the_database_is_down_is_applied_before_any_send(
    pipeline_factory: Callable[..., Pipeline],  # noqa: F811
    private_redis: PrivateRedis,  # noqa: F811
    fake: FakeProviders,  # noqa: F811
    role: LimitedRole,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fastapi.testclient import TestClient

    from engage.web.app import create_app

    ids = seed(6, 0)
    stopper = ids[0]
    with session_scope() as session:
        phone = session.scalar(select(Patient.phone).join(Message).where(Message.id == stopper))
        clinic_number = session.scalar(
            select(Clinic.sms_from)
            .join(Patient, Patient.clinic_id == Clinic.id)
            .join(Message)
            .where(Message.id == stopper)
        )
    assert phone and clinic_number
    # Claimed before the outage: their send task is in the broker when the database comes back, so the
    # send batch itself, not only the tick, must apply the held STOP before it sends.
    assert claim.claim_due() == ids
    role.create(limit=0)  # the workers' role: every connection refused
    workers = pipeline_factory(private_redis.url, ENGAGE_DATABASE_URL=role.url)
    workers.worker("w1", concurrency=2)
    from celery import Celery

    producer = Celery("test", broker=private_redis.url, set_as_current=False)
    producer.send_task(
        "engage.send_batch",
        args=[ids, "sms"],
        exchange="engage",
        routing_key="engage.send.sms",
        queue="engage.send.sms",
    )

    # The web app, as the same role: the database refuses it too.
    admin_url = get_settings().database_url
    monkeypatch.setenv("ENGAGE_DATABASE_URL", role.url)
    monkeypatch.setenv("ENGAGE_REDIS_URL", private_redis.url)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", FAKE_AUTH_TOKEN)
    get_settings.cache_clear()
    params = _inbound("stop please", phone, clinic_number, "SM" + "a" * 32)
    signature = RequestValidator(FAKE_AUTH_TOKEN).compute_signature(
        "http://engage.test/webhooks/twilio/inbound", params
    )
    answer = TestClient(create_app()).post(
        "/webhooks/twilio/inbound", data=params, headers={"X-Twilio-Signature": signature}
    )
    assert answer.status_code == 200, answer.text
    held = redis.Redis.from_url(private_redis.url)
    assert held.llen(spool.PREFIX + spool.INBOUND) == 1
    # The workers meet the refusing database meanwhile: they put the batch back for the next tick.
    wait_for(
        lambda: set(ids) <= {int(i) for i in held.smembers(spool.RETAKE_KEY)},
        30,
        "the workers to put the batch back",
        every=0.1,
    )
    assert fake.sms_requests() == []

    role.limit(-1)  # the database is back
    beat = pipeline_factory(private_redis.url)
    beat.beat()
    monkeypatch.setenv("ENGAGE_DATABASE_URL", admin_url)
    get_settings.cache_clear()
    final = wait_until_settled(ids, timeout=90)

    sent_to = Counter(r["message_id"] for r in fake.sms_requests())
    assert stopper not in sent_to, "the patient who said STOP during the outage was texted"
    assert final[stopper] in (MessageStatus.SKIPPED, MessageStatus.CANCELLED)
    assert all(final[i] is MessageStatus.SENT and sent_to[i] == 1 for i in ids[1:]), (final, sent_to)
    with session_scope() as session:
        kinds = session.scalars(select(InboundMessage.kind)).all()
        patient_id = session.scalar(select(Message.patient_id).where(Message.id == stopper))
        assert current_consent(session, patient_id, Channel.SMS) is ConsentState.OPTED_OUT
    assert kinds == ["opt_out"]
    assert redis.Redis.from_url(private_redis.url).llen(spool.PREFIX + spool.INBOUND) == 0


def test_send_results_outlive_a_database_outage_instead_of_becoming_unknown(
    pipeline_factory: Callable[..., Pipeline],  # noqa: F811
    private_redis: PrivateRedis,  # noqa: F811
    fake: FakeProviders,  # noqa: F811
    role: LimitedRole,
    tmp_path: Path,
) -> None:
    ids = seed(8, 0)
    # Every answer takes 2 s (the timeout is 3 s): the database goes away while the eight calls are in flight.
    fake.add_faults("sms", [{"delay": 2.0}] * 8)
    role.create(limit=20)
    # The outage outlasts the write's retries while the rows stay younger than stale ``sending`` (15 s): the held
    # results, not the reaper, settle them. The send's time limits leave room for the retries (celeryconfig).
    limits = {"ENGAGE_STALE_SENDING_SECONDS": "15", "ENGAGE_SEND_SOFT_TIME_LIMIT": "6"}
    workers = pipeline_factory(
        private_redis.url, ENGAGE_DATABASE_URL=role.url, ENGAGE_SEND_THREADS="8", ENGAGE_SEND_BATCH="8", **limits
    )
    beat = pipeline_factory(private_redis.url, **limits)
    beat.beat()
    workers.worker("w1", concurrency=1)
    wait_for(
        lambda: set(statuses(ids).values()) == {MessageStatus.SENDING}, 30, "the sends to be handed over", every=0.05
    )
    role.limit(0, disconnect=True)  # the database refuses the workers until the write's retries (6 s) are over
    held = redis.Redis.from_url(private_redis.url)
    wait_for(lambda: held.llen(spool.PREFIX + spool.RESULT) == 8, 30, "the results to be held in Redis", every=0.1)
    role.limit(20)
    final = wait_until_settled(ids, timeout=60)

    assert Counter(s.value for s in final.values()) == {"sent": 8}
    assert_each_sent_once(workers, ids, max_unknown=0)
    logs = _logs(tmp_path)
    assert "is held in Redis until it is back" in logs and "applied held" in logs
