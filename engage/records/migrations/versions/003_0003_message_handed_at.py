"""message.handed_at: when a worker committed to calling the provider (set just before the call).

A stale ``sending`` row without it never reached the provider and is requeued;
one with it may be out and is flagged ``unknown``. Rows already in ``sending``
when this runs get ``handed_at = sending_at``: we cannot tell how far their
worker got, so they keep the old, careful treatment (never resent blindly).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 11:15:44.886173
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE message SET handed_at = sending_at WHERE status = 'sending'")


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("handed_at")
