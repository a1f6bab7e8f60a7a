"""Engine and session factory. SQLite is the embedded default; PostgreSQL (psycopg 3) in production."""

from __future__ import annotations

import contextlib
import contextvars
import re
import threading
import time
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from engage.config import Settings, get_settings


def normalise_url(url: str) -> str:
    """Let people write ``postgresql://`` and still get the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    # hide_parameters: a database error must not quote a patient's phone, email or message into a log.
    kwargs: dict[str, Any] = {"future": True, "hide_parameters": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        settings = get_settings()
        kwargs.update(
            pool_size=pool_size(settings),
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout_seconds,
        )
    engine = create_engine(url, **kwargs)
    event.listen(engine, "handle_error", _strip_detail)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    else:
        _ping_idle_connections(engine)
        event.listen(engine, "connect", _postgresql_on_connect)
        event.listen(engine, "begin", _postgresql_on_begin)
    return engine


def pool_size(settings: Settings) -> int:
    """Connections a process keeps: ``ENGAGE_DB_POOL_SIZE``, else one per send thread (a send holds one at a time)."""
    return settings.db_pool_size or max(1, settings.send_threads)


#: Milliseconds each statement of the transactions begun in this context may run (None: no limit). The web app
#: sets it for every request (engage.web.deadline); the workers and the CLI leave it unset.
statement_timeout_ms: contextvars.ContextVar[int | None] = contextvars.ContextVar("statement_timeout_ms", default=None)


def _postgresql_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Sessions in UTC whatever the server's default (often "Etc/UTC", or a local zone): psycopg then reads
    # timestamps as datetimes in ``timezone.utc``, which UTCDateTime hands on as they are. In another zone (even
    # "Etc/UTC", a ZoneInfo) each one was converted again, some 2,000 conversions on Today. Nothing engage asks
    # the database depends on the session's zone.
    with dbapi_conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
    dbapi_conn.commit()


def _postgresql_on_begin(conn: Any) -> None:
    ms = statement_timeout_ms.get()
    if ms is not None:
        # LOCAL: for this transaction only, so the pooled connection goes back to the next user unchanged.
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(ms)}")


@contextlib.contextmanager
def statement_timeout(seconds: float | None) -> Iterator[None]:
    """Transactions begun inside the block (on PostgreSQL; threads started from it too) cancel any statement
    running longer than ``seconds`` (psycopg ``QueryCanceled``, SQLAlchemy ``OperationalError``)."""
    token = statement_timeout_ms.set(None if seconds is None else max(1, round(seconds * 1000)))
    try:
        yield
    finally:
        statement_timeout_ms.reset(token)


#: PostgreSQL's DETAIL line quotes the values behind an error ("Key (clinic_id, email)=(1, ana@example.com)
#: already exists"), which hide_parameters does not cover; it ends at the next "HINT:"-style line or the end.
_DETAIL = re.compile(r"\n?DETAIL:.*?(?=\n[A-Z]+:|\Z)", re.S)


def _strip_detail(context: ExceptionContext) -> None:
    """Drop the DETAIL line from a database error, in SQLAlchemy's message and in the driver's (its cause)."""
    for exc in (context.sqlalchemy_exception, context.original_exception):
        if exc is not None and exc.args and isinstance(exc.args[0], str) and "DETAIL:" in exc.args[0]:
            exc.args = (_DETAIL.sub("", exc.args[0]), *exc.args[1:])


#: A pooled connection idle longer than this is pinged before use (a server restart or a firewall drops idle ones).
PING_AFTER_IDLE_SECONDS = 5.0


def _ping_idle_connections(engine: Engine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, but only for connections that sat idle: a send checks a connection out
    twice within a second, and a ping each time was two round trips in every send."""

    @event.listens_for(engine.pool, "checkin")
    def _idle_from(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # noqa: BLE001 - any failure means "reconnect"
            raise DisconnectionError("stale pooled connection") from exc
        if not alive:
            raise DisconnectionError("stale pooled connection")


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy issue BEGIN itself (IMMEDIATE below), keep FKs honest, allow a reader beside the writer.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_on_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock up front, so two processes never both read-then-write the same rows.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _engine_for(url: str) -> Engine:
    """One engine (one pool) per URL in this process."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = make_engine(url)
        return engine


def reset_engines() -> None:
    """Close every engine this process made and forget it; the next use connects anew.

    For code that runs engage's commands one after another in one process, as separate processes
    would run them (the tests): a relative SQLite path may name another file once the folder
    changes, and a database may have been dropped and made again. Connections checked out at the
    time stay usable until they are returned.
    """
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    _sessionmaker_for.cache_clear()
    for engine in engines:
        engine.dispose()


def get_engine() -> Engine:
    return _engine_for(get_settings().database_url)


def session_factory() -> sessionmaker[Session]:
    return _sessionmaker_for(get_engine())


@lru_cache
def _sessionmaker_for(engine: Engine) -> sessionmaker[Session]:
    # One per engine: a sessionmaker builds a Session subclass, and its event set-up cost more than a send's SQL.
    return sessionmaker(engine, expire_on_commit=False)


@contextlib.contextmanager
def session_scope() -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any error: nothing half-written."""
    session = session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
