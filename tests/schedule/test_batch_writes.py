"""The batch writes publishing uses (engage.schedule.reconcile): values sent to PostgreSQL as one array literal
come back exactly, whatever characters a text holds."""

from __future__ import annotations

from sqlalchemy import text

from engage.db import session_factory
from engage.schedule.reconcile import _array_literal

AWKWARD = ["plain", 'a "quoted" word', "back\\slash", "\\", '"', "comma, and {braces}", "NULL", "", " spaced ", "ünï"]


def test_an_array_literal_reads_back_as_the_values_it_was_made_of(pg_url: str) -> None:
    with session_factory()() as session:
        values = [*AWKWARD, None, '{"session_number": 1, "note": "x\\\\y"}']
        found = session.execute(text("SELECT CAST(CAST(:a AS text) AS text[])"), {"a": _array_literal(values)}).scalar()
        assert found == values
        numbers = session.execute(
            text("SELECT CAST(CAST(:a AS text) AS integer[])"), {"a": _array_literal(["1", None, "-7"])}
        ).scalar()
        assert numbers == [1, None, -7]
