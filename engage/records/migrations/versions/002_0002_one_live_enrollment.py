"""One live (active or paused) enrollment per plan and sequence, enforced by the database.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 11:06:41.151704
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.create_index(
            "uq_enrollment_live_plan_sequence",
            ["plan_id", "sequence_key"],
            unique=True,
            postgresql_where=sa.text("status IN ('active', 'paused')"),
            sqlite_where=sa.text("status IN ('active', 'paused')"),
        )


def downgrade() -> None:
    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_enrollment_live_plan_sequence",
            postgresql_where=sa.text("status IN ('active', 'paused')"),
            sqlite_where=sa.text("status IN ('active', 'paused')"),
        )
