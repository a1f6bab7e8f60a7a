"""The benchmarks' PostgreSQL database: created when missing, schema rebuilt by the migrations each run."""

from __future__ import annotations

import os

from sqlalchemy import text
from sqlalchemy.engine import make_url

from engage.config import get_settings
from engage.db import make_engine, normalise_url
from engage.records import migrate

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/engage_bench"


def use_bench_database(*, reuse: bool = False) -> str:
    """Point this process's settings at ``ENGAGE_BENCH_DATABASE_URL`` (or :data:`DEFAULT_URL`), say which
    database it is (no password), and rebuild its schema; returns the URL.

    ``reuse``: keep the database's rows, only applying the migrations it lacks (a benchmark reusing the data a
    previous run seeded)."""
    url = os.environ.get("ENGAGE_BENCH_DATABASE_URL", DEFAULT_URL)
    os.environ["ENGAGE_DATABASE_URL"] = url
    get_settings.cache_clear()
    print(f"database: {make_url(normalise_url(url)).render_as_string(hide_password=True)}")
    prepare_database(url, keep_rows=reuse)
    return url


def prepare_database(url: str, *, keep_rows: bool = False) -> None:
    """Create the database if missing, then rebuild the schema from the migrations (``keep_rows``: only apply
    the migrations it lacks)."""
    target = make_url(normalise_url(url))
    admin = make_engine(target.set(database="postgres").render_as_string(hide_password=False))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}):
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    if not keep_rows:
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    migrate.upgrade(url)
