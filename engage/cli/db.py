"""``engage db``: create or migrate the schema."""

from __future__ import annotations

import click

from engage.cli.common import emit, json_option
from engage.config import get_settings


@click.group()
def db() -> None:
    """The database schema."""


@db.command()
@json_option
def upgrade() -> None:
    """Create the schema, or migrate it to the newest version."""
    from engage.records import migrate  # Alembic is slow to import; only this command needs it

    url = get_settings().database_url
    migrate.upgrade(url)
    revision = migrate.current(url)
    emit({"revision": revision}, f"database is at revision {revision}")
