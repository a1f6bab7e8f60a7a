"""Alembic, driven from code: the schema is only ever built by migrations (also in tests)."""

from __future__ import annotations

import warnings
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.exc import SAWarning

from engage.config import ensure_sqlite_key
from engage.db import normalise_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Create or migrate the schema at ``database_url`` to ``revision``.

    On an SQLite file (without ``ENGAGE_SECRET_KEY``) this also makes the random key kept
    beside it (:func:`engage.config.ensure_sqlite_key`), so every process signs links alike.
    """
    with warnings.catch_warnings():
        # SQLite's table copies (batch mode) cannot reflect expression indexes; 0013 re-creates the ones
        # 0007's copy dropped, so the warning would only alarm whoever runs `engage db upgrade` or the demo.
        warnings.filterwarnings(
            "ignore", "Skipped unsupported reflection of expression-based index", category=SAWarning
        )
        command.upgrade(alembic_config(database_url), revision)
    ensure_sqlite_key(database_url)


def current(database_url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from engage.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
