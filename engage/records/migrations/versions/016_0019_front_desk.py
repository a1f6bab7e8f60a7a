"""The front desk's day: a patient's date of birth, who confirmed a visit, and visits by start time.

``patient.date_of_birth`` tells two patients of one name apart (shown and searchable);
``appointment.confirmed_by`` is the staff member who confirmed a visit by phone (None with a
``confirmed_at``: the patient confirmed by reply); ``ix_appointment_start_at`` serves Today's list of
the day's visits; ``message.enrollment_id`` may be empty (a staff member's reply in a conversation is
sent through the outbox but planned by no sequence); ``ix_inbound_message_clinic_patient`` serves the
inbox's threads. Columns are added in place (no batch copy of ``patient`` on SQLite, which would
drop its expression indexes: see 0013).

Revision ID: 0019
Revises: 0014
Create Date: 2026-12-06 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("patient", sa.Column("date_of_birth", sa.Date(), nullable=True))
    op.add_column("appointment", sa.Column("confirmed_by", sa.String(320), nullable=True))
    op.create_index("ix_appointment_start_at", "appointment", ["start_at"])
    with op.batch_alter_table("message") as batch:
        batch.alter_column("enrollment_id", existing_type=sa.Integer(), nullable=True)
    op.create_index("ix_inbound_message_clinic_patient", "inbound_message", ["clinic_id", "patient_id", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_inbound_message_clinic_patient", table_name="inbound_message")
    op.execute("DELETE FROM delivery_event WHERE message_id IN (SELECT id FROM message WHERE enrollment_id IS NULL)")
    op.execute("DELETE FROM message WHERE enrollment_id IS NULL")
    with op.batch_alter_table("message") as batch:
        batch.alter_column("enrollment_id", existing_type=sa.Integer(), nullable=False)
    op.drop_index("ix_appointment_start_at", table_name="appointment")
    with op.batch_alter_table("appointment") as batch:
        batch.drop_column("confirmed_by")
    # In place on SQLite too (3.35+ drops a column without a table copy), so patient keeps its expression indexes.
    op.execute("ALTER TABLE patient DROP COLUMN date_of_birth")
