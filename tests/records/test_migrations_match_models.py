"""The schema the migrations build is the schema the models describe, on both backends.

Alembic's autogenerate comparison of the migrated database with the models' metadata must find
nothing but the indexes some migrations create by hand and the models leave out (expression and
partial indexes the ORM never needs to know about). A model column, table or index without its
migration, or a migration the models do not follow, fails here instead of on a clinic's database.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from engage.db import make_engine
from engage.records import outgoing_webhooks  # noqa: F401 - its tables join the metadata
from engage.records.models import Base

#: Indexes created only in migrations (0006): functional, partial or with INCLUDE columns.
MIGRATION_ONLY_INDEXES = {
    "ix_message_status_updated_at",
    "ix_patient_clinic_email",
    "ix_patient_clinic_first_name_lower",
    "ix_patient_clinic_last_name_lower",
    "ix_patient_clinic_sort",
    "ix_patient_phone_invalid",
}


def _flat(diffs: list[Any]) -> list[Any]:
    return [d for diff in diffs for d in (_flat(diff) if isinstance(diff, list) else [diff])]


def test_the_migrated_schema_matches_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = _flat(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()
    unexpected = [d for d in diffs if not (d[0] == "remove_index" and d[1].name in MIGRATION_ONLY_INDEXES)]
    assert unexpected == []


def test_the_indexes_only_migrations_make_are_all_there(db_url: str) -> None:
    # Read from the catalogue: SQLAlchemy cannot reflect SQLite's expression indexes, so the comparison
    # above would not notice them missing (0007's table copy once dropped three of them on SQLite).
    catalogue = (
        "SELECT name FROM sqlite_master WHERE type = 'index'"
        if db_url.startswith("sqlite")
        else "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
    )
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            present = set(connection.execute(text(catalogue)).scalars())
    finally:
        engine.dispose()
    assert MIGRATION_ONLY_INDEXES - present == set()
