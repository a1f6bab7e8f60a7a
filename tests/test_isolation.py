"""Each test run owns its databases, so two runs on one machine never wipe each other's data."""

from __future__ import annotations

import redis
from sqlalchemy import make_url, text

from engage.db import make_engine
from tests import conftest


def test_the_postgresql_database_is_this_runs_own(pg_url: str) -> None:
    configured = make_url(conftest.CONFIGURED_PG_URL).database
    assert make_url(pg_url).database == f"{configured}_{conftest.RUN_ID}" != configured
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar() == f"{configured}_{conftest.RUN_ID}"
    finally:
        engine.dispose()
    assert make_url(pg_url).database in conftest._made  # dropped when this process's tests end


def test_a_redis_database_another_run_holds_or_that_holds_other_data_is_never_flushed(redis_url: str) -> None:
    db = int(redis_url.rsplit("/", 1)[1])
    client = redis.Redis.from_url(redis_url)
    assert client.get(conftest.REDIS_LEASE_KEY) == conftest.RUN_ID.encode()
    try:
        client.set(conftest.REDIS_LEASE_KEY, "another-run", ex=60)  # as if another run held it
        client.set("their-key", "1")
        assert conftest._lease_and_flush(db) is False
        assert client.get("their-key") == b"1"

        client.delete(conftest.REDIS_LEASE_KEY, conftest.REDIS_MARKER_KEY)  # data no test run put there
        assert conftest._lease_and_flush(db) is False
        assert client.get("their-key") == b"1"
    finally:
        client.delete("their-key")
        client.close()
    assert conftest._lease_and_flush(db) is True  # empty again: ours to take back
