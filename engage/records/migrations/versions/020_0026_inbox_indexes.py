"""The inbox at 10,000 threads: the texts waiting for a person and a clinic's latest texts, each by an index.

``ix_inbound_message_waiting`` (partial: flagged and not handled) serves the inbox count shown on every page
and the inbox's waiting threads; ``ix_inbound_message_clinic_received`` its latest threads, without reading
every text of the clinic.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_inbound_message_clinic_received", "inbound_message", ["clinic_id", "received_at"])
    op.create_index(
        "ix_inbound_message_waiting",
        "inbound_message",
        ["clinic_id", "patient_id"],
        postgresql_where=sa.text("flagged IS true AND handled_at IS NULL"),
        sqlite_where=sa.text("flagged IS 1 AND handled_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_message_waiting", table_name="inbound_message")
    op.drop_index("ix_inbound_message_clinic_received", table_name="inbound_message")
