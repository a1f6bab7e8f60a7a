"""Alembic environment: one database URL, given by engage.records.migrate (never a global alembic.ini)."""

from __future__ import annotations

from alembic import context

from engage.db import make_engine
from engage.records import outgoing_webhooks  # noqa: F401  (its tables join Base.metadata)
from engage.records.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "engage.records.migrate sets sqlalchemy.url"
    connectable = make_engine(url)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    connectable.dispose()


run_migrations()
