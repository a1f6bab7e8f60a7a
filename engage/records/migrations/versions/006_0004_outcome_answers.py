"""outcome: keep every answer to a prompt, each with its own time (no longer one row per prompt).

A later answer used to overwrite the earlier one and re-date it; now each answer is
its own row and the prompt's outcome is its latest answer.

Revision ID: 0004
Revises: 0006
Create Date: 2026-12-01 15:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outcome", schema=None) as batch_op:
        batch_op.drop_constraint("uq_outcome_prompt_message_id", type_="unique")
        batch_op.create_index("ix_outcome_prompt_message_id", ["prompt_message_id", "recorded_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outcome", schema=None) as batch_op:
        batch_op.drop_index("ix_outcome_prompt_message_id")
        batch_op.create_unique_constraint("uq_outcome_prompt_message_id", ["prompt_message_id"])
