"""Care content (issue 14): a clinic's SMS name, frequency caps, steps turned off and email preference;
a plan's exercises; when an appointment was booked.

Revision ID: 0009
Revises: 0004
Create Date: 2026-12-01 15:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clinic", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sms_name", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("sms_per_day", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sms_per_week", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("steps_off", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column("prefers_email", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("treatment_plan", schema=None) as batch_op:
        batch_op.add_column(sa.Column("exercises", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.drop_column("created_at")
    with op.batch_alter_table("treatment_plan", schema=None) as batch_op:
        batch_op.drop_column("exercises")
    with op.batch_alter_table("clinic", schema=None) as batch_op:
        batch_op.drop_column("prefers_email")
        batch_op.drop_column("steps_off")
        batch_op.drop_column("sms_per_week")
        batch_op.drop_column("sms_per_day")
        batch_op.drop_column("sms_name")
