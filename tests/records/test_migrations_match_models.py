"""The schema the migrations build is the schema the models describe, on both backends.

Alembic's autogenerate comparison of the migrated database with the models' metadata must find
nothing: the models declare every index, the expression, partial and INCLUDE ones too. A model
column, table or index without its migration, or a migration the models do not follow, fails here
instead of on a clinic's database. SQLite's expression indexes cannot be reflected, so the second
test reads them from the catalogue by name.
"""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from engage.db import make_engine
from engage.records import outgoing_webhooks  # noqa: F401 - its tables join the metadata
from engage.records.models import Base


def _flat(diffs: list[Any]) -> list[Any]:
    return [d for diff in diffs for d in (_flat(diff) if isinstance(diff, list) else [diff])]


# SQLite cannot reflect expression indexes: Alembic and SQLAlchemy say so, and the next test checks them there.
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_the_migrated_schema_matches_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = _flat(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()
    assert diffs == []


def test_every_index_the_models_declare_is_there(db_url: str) -> None:
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
    declared = {index.name for table in Base.metadata.tables.values() for index in table.indexes}
    assert any(name and name.endswith("_lower") for name in declared)  # the expression indexes are declared
    assert declared - present == set()
