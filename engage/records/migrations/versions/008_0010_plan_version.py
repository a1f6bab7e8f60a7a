"""enrollment.plan_version and message.plan_version: a stamp that lets a send skip the re-plan.

Every reconcile of an enrollment bumps ``enrollment.plan_version`` and stamps the
rows it leaves ``scheduled`` with it. A row whose stamp still equals its
enrollment's was planned from the inputs that hold now, so the send-time check
need not run planning again; any other row (claimed while a re-plan ran, or
written before this migration: NULL) is re-planned at send time as before.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 15:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plan_version", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plan_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("plan_version")
    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.drop_column("plan_version")
