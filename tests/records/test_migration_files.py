"""The migration files sort in the order Alembic runs them.

Naming scheme: ``engage/records/migrations/versions/<NNN>_<revision>_<slug>.py``, where ``NNN`` is the
file's place in the chain (001, 002, …, no gaps) and ``<revision>`` is the Alembic revision id the file
declares (ids never change once released: databases in the field record them). Revision ids were given
out of order and one was never used (the chain runs 0001, 0002, 0003, 0011, 0006, 0004, 0009, 0010,
0008, 0007, 0012, 0013, with no 0005), so the sequence number, not the id, carries the order.

To add a migration: name it ``<last NNN + 1>_<new revision>_<slug>.py`` and set its ``down_revision``
to the revision of the file that sorts last. When two branches each add one (both ``down_revision`` the
same head), whoever merges second renumbers theirs and points its ``down_revision`` at the other's:
this test fails until the chain is one straight line again.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from engage.records.migrate import MIGRATIONS

NAME = re.compile(r"^(?P<seq>\d{3})_(?P<revision>[0-9a-z]+)_(?P<slug>[a-z0-9_]+)\.py$")


def _declared(path: Path) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id in {"revision", "down_revision"}:
                    values[target.id] = node.value.value
    return values


def test_file_order_follows_down_revision() -> None:
    files = sorted((MIGRATIONS / "versions").glob("*.py"))
    assert len(files) >= 12
    previous: str | None = None
    for place, path in enumerate(files, start=1):
        named = NAME.match(path.name)
        assert named, f"{path.name}: name it <NNN>_<revision>_<slug>.py"
        declared = _declared(path)
        assert int(named["seq"]) == place, f"{path.name}: the {place}th file in the chain should start {place:03d}_"
        assert declared.get("revision") == named["revision"], (
            f"{path.name}: declares revision {declared.get('revision')!r}"
        )
        assert declared.get("down_revision") == previous, (
            f"{path.name}: down_revision is {declared.get('down_revision')!r}, but the file before it is {previous!r}"
        )
        previous = named["revision"]
