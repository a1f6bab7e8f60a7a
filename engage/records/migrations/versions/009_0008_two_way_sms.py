"""Two-way SMS: appointment confirmation and call-back request, and which auto-reply an inbound SMS got.

``appointment.confirmed_at``: the patient replied C/YES/SI to a reminder.
``appointment.callback_requested_at``: the patient replied R; staff call back (cleared by them).
``inbound_message.auto_reply``: the kind of automatic answer we sent (``other``, ``ask_again``, ...), so
the once-a-day reply to free text and the once-only "please send one number" can be counted.

Revision ID: 0008
Revises: 0010
Create Date: 2026-12-01 15:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("callback_requested_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("auto_reply", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_column("auto_reply")
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.drop_column("callback_requested_at")
        batch_op.drop_column("confirmed_at")
