"""The claim query on PostgreSQL when the planner knows nothing: a fresh, never-analysed outbox table.

With stale statistics PostgreSQL used to run ``id IN (SELECT … LIMIT n FOR UPDATE SKIP
LOCKED)`` as a semi-join that re-ran the subquery, and a claim took far more than its
batch. The table here is created in its own schema and filled just before the claim,
so autovacuum has had no chance to analyse it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from engage.config import get_settings
from engage.db import make_engine
from engage.delivery.claim import claim_due

SCHEMA = "claim_fresh"
ROWS = 5000


@pytest.fixture
def fresh_outbox(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``ENGAGE_DATABASE_URL`` pointing at a new schema whose ``message`` table holds ROWS due rows, never analysed."""
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}"))
        # LIKE copies columns, defaults and indexes but no foreign keys: rows need no patients.
        conn.execute(text(f"CREATE TABLE {SCHEMA}.message (LIKE public.message INCLUDING ALL)"))
        conn.execute(
            text(
                f"INSERT INTO {SCHEMA}.message (enrollment_id, patient_id, clinic_id, step_key, occurrence, channel,"
                " template, context, due_at, status, attempts, created_at, updated_at)"
                " SELECT 1, 1, 1, 'visit-reminder', g::text, 'sms', 'visit-reminder', '{}',"
                "        now() - interval '1 day' + g * interval '1 second', 'scheduled', 0, now(), now()"
                f" FROM generate_series(1, {ROWS}) AS g"
            )
        )
    url = f"{pg_url}?options=-csearch_path%3D{SCHEMA},public"
    monkeypatch.setenv("ENGAGE_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        yield url
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        engine.dispose()


def test_claim_takes_at_most_its_batch_from_a_never_analysed_table(fresh_outbox: str) -> None:
    engine = make_engine(fresh_outbox)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT reltuples FROM pg_class WHERE oid = 'message'::regclass")) < 1  # no stats

    first = claim_due(limit=5)
    second = claim_due(limit=5)

    assert len(first) == 5 and len(second) == 5
    assert set(first).isdisjoint(second)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM message WHERE status = 'queued'")) == 10
        assert first == list(conn.scalars(text("SELECT id FROM message ORDER BY due_at LIMIT 5")))  # oldest first
    engine.dispose()
