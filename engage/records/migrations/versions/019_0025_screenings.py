"""Screenings: the Keele STarT Back Tool's answers, scores and risk group (low, medium, high) per patient.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 05:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "screening",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("tool", sa.String(length=40), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("subscale", sa.Integer(), nullable=False),
        sa.Column("risk", sa.String(length=10), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"], name=op.f("fk_screening_patient_id_patient")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_screening")),
    )
    op.create_index("ix_screening_patient_recorded_at", "screening", ["patient_id", "recorded_at"])


def downgrade() -> None:
    op.drop_index("ix_screening_patient_recorded_at", table_name="screening")
    op.drop_table("screening")
