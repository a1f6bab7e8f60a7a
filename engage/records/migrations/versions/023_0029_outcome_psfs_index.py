"""The Outcomes page's PSFS figures at 200,000 scores: the PSFS ratings by patient, read off a partial index.

The function figures join each episode in scope to its patient's PSFS ratings. Without an index holding only
those, PostgreSQL scanned every score (all pain scores: 200,000 in the benchmark) on every request to find
them; ``ix_outcome_psfs_patient_recorded_at`` (patient, time) ``WHERE measure = 'psfs'`` holds the PSFS ones only.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_outcome_psfs_patient_recorded_at",
        "outcome",
        ["patient_id", "recorded_at"],
        postgresql_where=sa.text("measure = 'psfs'"),
        sqlite_where=sa.text("measure = 'psfs'"),
    )


def downgrade() -> None:
    op.drop_index("ix_outcome_psfs_patient_recorded_at", table_name="outcome")
