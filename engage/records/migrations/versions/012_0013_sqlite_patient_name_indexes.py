"""SQLite: put back the patient name indexes that 0007's table copy dropped.

0006 made three expression indexes on ``patient`` (``lower(last_name)``, ``lower(first_name)``, and the
list's sort order). On SQLite, 0007 alters ``patient`` by copying the table (Alembic's batch mode), and
a copy only re-creates the indexes SQLAlchemy can reflect, which excludes expression indexes: they were
silently lost, so patient search and the patient list read the whole table on the embedded default.
PostgreSQL alters in place and kept them. A later batch alteration of ``patient`` must re-create them too.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

INDEXES: dict[str, list[str | sa.TextClause]] = {
    "ix_patient_clinic_last_name_lower": ["clinic_id", sa.text("lower(last_name)")],
    "ix_patient_clinic_first_name_lower": ["clinic_id", sa.text("lower(first_name)")],
    "ix_patient_clinic_sort": ["clinic_id", sa.text("lower(last_name)"), sa.text("lower(first_name)"), "id"],
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, columns in INDEXES.items():
        op.create_index(name, "patient", columns, if_not_exists=True)


def downgrade() -> None:
    pass  # 0006's downgrade drops them, as it always did
