"""Shared fixtures: real databases (SQLite and PostgreSQL) built by Alembic, and a clean environment.

Each test process owns what it uses, so two runs on one machine (or two xdist workers) never wipe
each other's data:

- PostgreSQL: a database of its own, ``<configured name>_<random>_<worker>``, made on the server of
  ``ENGAGE_TEST_DATABASE_URL`` (default: the local ``test`` database, only used as the way in) on first
  use, migrated once, and dropped when the process's tests end.
- Redis: one of the server's 16 numbered databases, leased (see ``REDIS_LEASE_KEY``), starting from the
  one ``ENGAGE_TEST_REDIS_URL`` names; flushed before each test that asks for it, emptied at the end.
- SQLite: a file in the run's temporary folder.

A test that needs a service that is not running fails and says how to start it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, inspect, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from engage.config import get_settings
from engage.db import make_engine, reset_engines
from engage.records import (
    migrate,
    outgoing_webhooks,  # noqa: F401 - its tables join the metadata
)
from engage.records import staff as staff_records
from engage.records.models import Base
from engage.schedule.versions import clear_cache as clear_version_cache

#: pytest-xdist's worker name (``gw0``, ``gw1``, …); None when the tests run in one process.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
#: This test process's own name for what it owns (its PostgreSQL database, its Redis lease).
RUN_ID = f"{secrets.token_hex(4)}_{XDIST_WORKER or 'main'}"


def _own_database(url: str) -> str:
    """This process's own PostgreSQL database on the configured server: ``<name>_<random>_<worker>``.

    Made on first use and dropped when the process's tests end, so two runs (or two xdist workers)
    never share one; the configured database itself is only the way in to make it.
    """
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{RUN_ID}").render_as_string(hide_password=False)


CONFIGURED_PG_URL = os.environ.get("ENGAGE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
CONFIGURED_REDIS_URL = os.environ.get("ENGAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PG_URL = _own_database(CONFIGURED_PG_URL)

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


def clean_environment(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """No credentials, an outbox folder in ``folder`` and a known secret (what every test starts with)."""
    for name in _ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENGAGE_OUTBOX_DIR", str(folder / "outbox"))
    monkeypatch.setenv("ENGAGE_SECRET_KEY", "test-secret-key-0123456789")
    monkeypatch.setenv("ENGAGE_PUBLIC_URL", "http://engage.test")
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every test starts with no credentials, its own outbox folder and a known secret."""
    clean_environment(monkeypatch, tmp_path)
    yield
    get_settings.cache_clear()


#: argon2id as engage hashes staff passwords (argon2-cffi's defaults: 64 MiB, 3 passes, 4 lanes), kept here
#: for the test that checks it; :func:`light_password_hashing` swaps in a light cost for the rest.
PRODUCTION_HASHER = staff_records._hasher


@pytest.fixture(scope="session", autouse=True)
def light_password_hashing() -> Iterator[None]:
    """Staff passwords hashed at argon2id's lightest cost in this process: the same algorithm and code
    paths (hash, verify, rehash), but about 2 ms a hash, not 0.2-1 s. Tests sign staff in by the
    thousand; a server the tests start as its own process hashes at the real cost."""
    light = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    saved = staff_records._hasher, staff_records._DUMMY_HASH
    staff_records._hasher = light
    staff_records._DUMMY_HASH = light.hash("not-a-real-password-for-timing")
    yield
    staff_records._hasher, staff_records._DUMMY_HASH = saved


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup``, keep the heavy tests that start processes on one xdist worker, one at a time.

    Worker tests start Celery worker, beat and Redis processes and measure what they do in time;
    browser tests start Chromium and a server. Two of them at once only make each other late (spreading
    the browser modules over the xdist workers was tried: more CPU in all, no shorter run).
    """
    for item in items:
        for marker in ("workers", "browser"):
            if item.get_closest_marker(marker):
                item.add_marker(pytest.mark.xdist_group(marker))


#: Databases this process made (dropped at its end).
_made: set[str] = set()


def _admin() -> Engine:
    """An engine on the configured database, the way in to make and drop this process's own."""
    return make_engine(CONFIGURED_PG_URL)


def _create_own_database(url: str) -> None:
    """``CREATE DATABASE`` for this process's own database, once."""
    name = make_url(url).database
    if name in _made:
        return
    admin = _admin()
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        _made.add(name)
    except OperationalError:
        pass  # the server is not reachable: _require_postgres fails the test and says how to start it
    finally:
        admin.dispose()


def _drop_own_databases() -> None:
    """Drop what :func:`_create_own_database` made (``FORCE``: a process a test left running lets go)."""
    _dispose_emptiers()
    if not _made:
        return
    reset_engines()
    admin = _admin()
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in sorted(_made):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        _made.clear()
    finally:
        admin.dispose()


#: URLs of this process's own PostgreSQL databases found reachable (checked once, not for every test).
_reachable: set[str] = set()


def _require_postgres(url: str) -> None:
    if url in _reachable:
        return
    _create_own_database(url)
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
    else:
        _reachable.add(url)
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
    if url not in _done:  # both start empty (a new database, a new file): the migrations define the schema
        migrate.upgrade(url)
        _check_every_table_is_emptied(url)
        _done.add(url)
    _truncate(url)
    clear_version_cache()  # the ids start again at 1: a version cached by an earlier test is not this one
    return url


#: One engine per database for :func:`_truncate`, kept for the process: a new engine (a new connection, and
#: SQLAlchemy's first-connect queries) for every test cost several times the emptying itself.
_emptiers: dict[str, Engine] = {}


def _truncate(url: str) -> None:
    """Empty every table and restart the ids at 1, as a new database would have them.

    ``DELETE`` child tables first rather than PostgreSQL's ``TRUNCATE``: on tables a test left nearly
    empty it is several times faster (``TRUNCATE`` makes new files for every table and its indexes).
    On PostgreSQL the statements go as one string (one round trip). A connection a test broke (a
    backend terminated, a server restarted) is replaced once.
    """
    try:
        _empty(url)
    except DBAPIError:
        _emptiers.pop(url).dispose()
        _empty(url)


def _empty(url: str) -> None:
    engine = _emptiers.get(url)
    if engine is None:
        engine = _emptiers[url] = make_engine(url)
    tables = list(reversed(Base.metadata.sorted_tables))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "".join(f'DELETE FROM "{table.name}";' for table in tables)
                + "SELECT setval(c.oid, 1, false) FROM pg_class c "
                "WHERE c.relkind = 'S' AND c.relnamespace = 'public'::regnamespace"
            )
        else:
            for table in tables:
                conn.execute(table.delete())


def _dispose_emptiers() -> None:
    while _emptiers:
        _emptiers.popitem()[1].dispose()


def _check_every_table_is_emptied(url: str) -> None:
    """The migrated database has no table :func:`_truncate` would leave full (a model module not imported)."""
    engine = make_engine(url)
    try:
        present = set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()
    assert present == set(Base.metadata.tables), f"tables the models do not know: {present - set(Base.metadata.tables)}"


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


#: Redis has 16 numbered databases and no way to make more, so a run leases one: this key, set in the
#: database itself to the run's id, expiring unless renewed (each test that asks for Redis renews it).
#: A run takes a database only if nobody holds its lease and it is empty, or carries the marker of a test
#: run that ended without emptying it (killed; its lease expired), so it never flushes another run's data,
#: nor data that is not a test run's. Flushing and renewing happen in one transaction (WATCH on the lease),
#: so nobody can take the database in between. A run that ends empties its database, marker included.
REDIS_LEASE_KEY = "engage-test:lease"
REDIS_MARKER_KEY = "engage-test:db"
REDIS_LEASE_SECONDS = 3600
_redis_db: int | None = None


def _redis_at(db: int) -> str:
    return urlunsplit(urlsplit(CONFIGURED_REDIS_URL)._replace(path=f"/{db}"))


def _redis_candidates() -> list[int]:
    """The configured database first (for an xdist worker ``gwN``, the Nth below it), then the rest below it."""
    parts = urlsplit(CONFIGURED_REDIS_URL)
    start = int(parts.path.strip("/") or 0) - int((XDIST_WORKER or "gw0").removeprefix("gw") or 0)
    return [(start - i) % 16 for i in range(16)]


def _lease_and_flush(db: int) -> bool:
    """Flush database ``db`` and (re)take its lease for this run, if it is free or already ours."""
    import redis

    client = redis.Redis.from_url(_redis_at(db))
    try:
        with client.pipeline() as pipe:
            try:
                pipe.watch(REDIS_LEASE_KEY)
                owner = pipe.get(REDIS_LEASE_KEY)
                ours = owner is not None and owner.decode() == RUN_ID
                if not ours and (owner is not None or (pipe.dbsize() and not pipe.exists(REDIS_MARKER_KEY))):
                    return False
                pipe.multi()
                pipe.flushdb()
                pipe.set(REDIS_LEASE_KEY, RUN_ID, ex=REDIS_LEASE_SECONDS)
                pipe.set(REDIS_MARKER_KEY, "1")
                pipe.execute()
                return True
            except redis.WatchError:  # another run took it between our look and our flush
                return False
    finally:
        client.close()


def _release_redis() -> None:
    """Empty this run's Redis database, lease and marker too: it is left as it was found (empty)."""
    global _redis_db
    if _redis_db is None:
        return
    import redis

    client = redis.Redis.from_url(_redis_at(_redis_db))
    try:
        with client.pipeline() as pipe:
            pipe.watch(REDIS_LEASE_KEY)
            owner = pipe.get(REDIS_LEASE_KEY)
            if owner is not None and owner.decode() == RUN_ID:
                pipe.multi()
                pipe.flushdb()
                pipe.execute()
    except (redis.WatchError, redis.exceptions.ConnectionError):
        pass  # taken over meanwhile, or Redis is gone: nothing of ours to empty
    finally:
        client.close()
        _redis_db = None


@pytest.fixture
def redis_url() -> str:
    """A reachable Redis database of this run's own, flushed (see :data:`REDIS_LEASE_KEY`)."""
    import redis

    global _redis_db
    try:
        reachable = bool(redis.Redis.from_url(CONFIGURED_REDIS_URL).ping())
    except redis.exceptions.ConnectionError:
        reachable = False
    if not reachable:
        pytest.fail(f"Redis is not reachable at {CONFIGURED_REDIS_URL}. Start it with\n  {START_REDIS}", pytrace=False)
    candidates = _redis_candidates()
    if _redis_db is not None:  # keep the one we hold, if we still hold it
        candidates = [_redis_db, *(db for db in candidates if db != _redis_db)]
    _redis_db = next((db for db in candidates if _lease_and_flush(db)), None)
    if _redis_db is None:
        pytest.fail(
            "every Redis database is leased by another test run or holds data that is not a test run's; "
            f"wait for the other runs, or free one (FLUSHDB) on {CONFIGURED_REDIS_URL}",
            pytrace=False,
        )
    return _redis_at(_redis_db)


def pytest_sessionfinish() -> None:
    """This process's tests are over (each xdist worker runs this too): drop its database, free its Redis."""
    _drop_own_databases()
    _release_redis()
