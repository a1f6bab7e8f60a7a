"""Today's counts at 1,000,000 messages: a clinic's patients by id, read off an index.

The counts of messages due in the next 24 hours and of the last 24 hours join some 11,000 messages to
``patient`` only to keep the clinic's; ``ix_patient_clinic_id_id`` (clinic, id) hands that join the clinic's
patient ids in order from the index alone, instead of reading every patient row for its clinic.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 06:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_patient_clinic_id_id", "patient", ["clinic_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_patient_clinic_id_id", table_name="patient")
