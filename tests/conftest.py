"""Shared fixtures: real databases (SQLite and PostgreSQL) built by Alembic, and a clean environment.

PostgreSQL comes from ``ENGAGE_TEST_DATABASE_URL`` (default: the local ``test`` database);
Redis from ``ENGAGE_TEST_REDIS_URL``. A test that needs one that is not running fails
and says how to start it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from engage.config import get_settings
from engage.db import make_engine
from engage.records import migrate
from engage.records.models import Base

#: pytest-xdist's worker name (``gw0``, ``gw1``, …); None when the tests run in one process.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")


def _per_worker_database(url: str) -> str:
    """Each xdist worker gets its own PostgreSQL database, ``<name>_gw0`` … (created on first use)."""
    if not XDIST_WORKER:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{XDIST_WORKER}").render_as_string(hide_password=False)


def _per_worker_redis(url: str) -> str:
    """Each xdist worker gets its own Redis database: ``gw0`` the configured one, ``gwN`` the Nth below it (mod 16)."""
    if not XDIST_WORKER:
        return url
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0)
    index = int(XDIST_WORKER.removeprefix("gw") or 0)
    return urlunsplit(parts._replace(path=f"/{(db - index) % 16}"))


PG_URL = _per_worker_database(os.environ.get("ENGAGE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
REDIS_URL = _per_worker_redis(os.environ.get("ENGAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))

START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
START_REDIS = "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no"

_ENV_TO_CLEAR = (
    "ENGAGE_DATABASE_URL",
    "ENGAGE_SMS_PROVIDER",
    "ENGAGE_EMAIL_PROVIDER",
    "ENGAGE_BROKER_URL",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "TWILIO_MESSAGING_SERVICE_SID",
    "SENDGRID_API_KEY",
    "SENDGRID_WEBHOOK_PUBLIC_KEY",
    "ENGAGE_TWILIO_API_BASE",
    "ENGAGE_SENDGRID_API_BASE",
    "ENGAGE_LOG_FORMAT",
    "ENGAGE_METRICS_TOKEN",
    "ENGAGE_PURGE_AFTER_DAYS",
    "PROMETHEUS_MULTIPROC_DIR",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every test starts with no credentials, its own outbox folder and a known secret."""
    for name in _ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENGAGE_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.setenv("ENGAGE_SECRET_KEY", "test-secret-key-0123456789")
    monkeypatch.setenv("ENGAGE_PUBLIC_URL", "http://engage.test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup``, keep the heavy tests that start processes on one xdist worker, one at a time.

    Worker tests start Celery worker, beat and Redis processes and measure what they do in time;
    browser tests start Chromium and a server. Two of them at once on two cores only make each other late.
    """
    for item in items:
        for marker in ("workers", "browser"):
            if item.get_closest_marker(marker):
                item.add_marker(pytest.mark.xdist_group(marker))


def _create_database_if_missing(url: str) -> None:
    """``CREATE DATABASE`` for an xdist worker's own database (through the server's ``postgres`` database)."""
    name = make_url(url).database
    admin = make_engine(make_url(url).set(database="postgres").render_as_string(hide_password=False))
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}).first()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError:
        pass  # the server is not reachable: _require_postgres fails the test and says how to start it
    finally:
        admin.dispose()


def _require_postgres(url: str) -> None:
    if XDIST_WORKER:
        _create_database_if_missing(url)
    engine = make_engine(url)
    try:
        with engine.connect():
            pass
    except Exception as exc:  # any driver error means "not there"
        pytest.fail(
            f"PostgreSQL is not reachable at {url} ({type(exc).__name__}). Start it with\n"
            f"  {START_POSTGRES}\nor point ENGAGE_TEST_DATABASE_URL at a running server.",
            pytrace=False,
        )
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def _migrated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Backend name -> URL, each migrated once per run (lazily) with ``alembic upgrade head``."""
    return {"sqlite": f"sqlite:///{tmp_path_factory.mktemp('db') / 'engage.db'}", "postgresql": PG_URL}


_done: set[str] = set()


def _prepare(url: str, backend: str) -> str:
    if backend == "postgresql":
        _require_postgres(url)
    if url not in _done:
        if backend == "postgresql":
            engine = make_engine(url)
            with engine.begin() as conn:  # start from nothing so the migrations, not leftovers, define the schema
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            engine.dispose()
        migrate.upgrade(url)
        _done.add(url)
    _truncate(url)
    return url


def _truncate(url: str) -> None:
    engine = make_engine(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))
    engine.dispose()


def _use(url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ENGAGE_DATABASE_URL", url)
    get_settings.cache_clear()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, _migrated: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty, migrated database on each backend; ``ENGAGE_DATABASE_URL`` points at it."""
    return _use(_prepare(_migrated[request.param], request.param), monkeypatch)


@pytest.fixture
def pg_url(_migrated: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty, migrated PostgreSQL database (for tests whose behaviour needs it: workers, SKIP LOCKED)."""
    return _use(_prepare(_migrated["postgresql"], "postgresql"), monkeypatch)


@pytest.fixture
def sqlite_url(_migrated: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    return _use(_prepare(_migrated["sqlite"], "sqlite"), monkeypatch)


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    """A session on the ``db_url`` database (both backends)."""
    from engage.db import session_factory

    s = session_factory()()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def redis_url() -> str:
    """A reachable Redis (database 15, flushed)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}. Start it with\n  {START_REDIS}", pytrace=False)
    client.flushdb()
    return REDIS_URL
