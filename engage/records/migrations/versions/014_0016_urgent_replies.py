"""Urgent replies and the visit a reply was about.

``inbound_message.urgent``: the reply mentions a red-flag symptom or a pain score of 8 or more; it got
the safety answer and sits at the top of the inbox and Today.
``inbound_message.appointment_id``: the visit a confirmation or call-back request was about, so the
``reply.received`` webhook event can name it (our id and the practice-management system's).

Revision ID: 0016
Revises: 0018
Create Date: 2026-12-06 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("urgent", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("appointment_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_inbound_message_appointment_id_appointment", "appointment", ["appointment_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_constraint("fk_inbound_message_appointment_id_appointment", type_="foreignkey")
        batch_op.drop_column("appointment_id")
        batch_op.drop_column("urgent")
