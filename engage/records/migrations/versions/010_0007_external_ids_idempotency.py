"""External ids (the practice-management system's, unique per clinic) and stored Idempotency-Key answers.

Plans and appointments carry ``external_clinic_id`` beside ``external_id`` so the
database itself keeps an external id unique within a clinic.

Revision ID: 0007
Revises: 0008
Create Date: 2026-12-01 15:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_id", sa.String(length=100), nullable=True))
        batch_op.create_unique_constraint("uq_patient_external_id", ["clinic_id", "external_id"])
    for table in ("treatment_plan", "appointment"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("external_id", sa.String(length=100), nullable=True))
            batch_op.add_column(sa.Column("external_clinic_id", sa.Integer(), nullable=True))
            batch_op.create_foreign_key(
                f"fk_{table}_external_clinic_id_clinic", "clinic", ["external_clinic_id"], ["id"]
            )
            batch_op.create_unique_constraint(f"uq_{table}_external_id", ["external_clinic_id", "external_id"])
    op.create_table(
        "idempotency_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_user_id"], ["staff_user.id"], name=op.f("fk_idempotency_key_staff_user_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_key")),
        sa.UniqueConstraint("staff_user_id", "key", name="uq_idempotency_key_staff_key"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_key")
    for table in ("appointment", "treatment_plan"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"uq_{table}_external_id", type_="unique")
            batch_op.drop_constraint(f"fk_{table}_external_clinic_id_clinic", type_="foreignkey")
            batch_op.drop_column("external_clinic_id")
            batch_op.drop_column("external_id")
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_constraint("uq_patient_external_id", type_="unique")
        batch_op.drop_column("external_id")
