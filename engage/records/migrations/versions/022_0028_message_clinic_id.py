"""Today's counts at 1,000,000 messages without a join: ``message.clinic_id``.

Every count and list on Today is of one clinic's messages; the clinic was the patient's, so each count joined
some 11,000 messages to ``patient`` (sorted by patient, merged with the clinic's 100,000 patient ids) only to
keep the clinic's. The clinic is now on the message itself (a patient never changes clinic; every writer of
the outbox sets it), copied here from the patient of each existing message, and two indexes lead with it:

- ``ix_message_clinic_status_due_at`` (clinic, status, due): what is due in the next 24 hours by channel, the
  first 50 failed and unknown messages waiting for a person by due time (both index-only: the channel and the
  id are included on PostgreSQL);
- ``ix_message_clinic_status_updated_at`` (clinic, status, last change): what was sent, delivered, failed or
  skipped in the last 24 hours, the bounces of the last week. It replaces ``ix_message_status_updated_at``,
  which served only those counts (``engage status``'s failed and unknown of the last week, rare rows, are
  found by ``ix_message_status_due_at``).

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("message", sa.Column("clinic_id", sa.Integer(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE message SET clinic_id = patient.clinic_id FROM patient WHERE patient.id = message.patient_id"
        )
    else:
        op.execute(
            "UPDATE message SET clinic_id = (SELECT clinic_id FROM patient WHERE patient.id = message.patient_id)"
        )
    with op.batch_alter_table("message") as batch:
        batch.alter_column("clinic_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key(batch.f("fk_message_clinic_id_clinic"), "clinic", ["clinic_id"], ["id"])
    op.drop_index("ix_message_status_updated_at", table_name="message")
    op.create_index(
        "ix_message_clinic_status_due_at",
        "message",
        ["clinic_id", "status", "due_at"],
        postgresql_include=["channel", "id"],
    )
    op.create_index("ix_message_clinic_status_updated_at", "message", ["clinic_id", "status", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_message_clinic_status_updated_at", table_name="message")
    op.drop_index("ix_message_clinic_status_due_at", table_name="message")
    op.create_index(
        "ix_message_status_updated_at", "message", ["status", "updated_at"], postgresql_include=["patient_id"]
    )
    with op.batch_alter_table("message") as batch:
        batch.drop_constraint(batch.f("fk_message_clinic_id_clinic"), type_="foreignkey")
        batch.drop_column("clinic_id")
