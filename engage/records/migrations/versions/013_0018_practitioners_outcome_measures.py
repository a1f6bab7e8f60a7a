"""Practitioners on plans and appointments; outcome measures (NPRS, PSFS items) and intake links.

- ``practitioner``: a clinic's clinician, either a staff account of role practitioner or a name and an
  external id from the practice-management system (matched by that id on sync);
- ``treatment_plan.practitioner_id`` and ``appointment.practitioner_id``: nullable, so existing rows and
  clinics that do not track who treats stay as they are;
- ``outcome.measure`` (``nprs`` for every existing row: pain 0-10) and ``outcome.item`` (a PSFS activity);
  ``outcome.score`` stays a whole 0-10 number for both measures.

Revision ID: 0018
Revises: 0013
Create Date: 2026-12-06 02:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "practitioner",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=True),
        sa.Column("staff_user_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"], name=op.f("fk_practitioner_clinic_id_clinic")),
        sa.ForeignKeyConstraint(
            ["staff_user_id"], ["staff_user.id"], name=op.f("fk_practitioner_staff_user_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_practitioner")),
        sa.UniqueConstraint("clinic_id", "external_id", name="uq_practitioner_external_id"),
        sa.UniqueConstraint("staff_user_id", name=op.f("uq_practitioner_staff_user_id")),
    )
    op.create_index(op.f("ix_practitioner_clinic_id"), "practitioner", ["clinic_id"])
    with op.batch_alter_table("treatment_plan", schema=None) as batch_op:
        batch_op.add_column(sa.Column("practitioner_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_treatment_plan_practitioner_id_practitioner"), "practitioner", ["practitioner_id"], ["id"]
        )
        batch_op.create_index(batch_op.f("ix_treatment_plan_practitioner_id"), ["practitioner_id"])
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("practitioner_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_appointment_practitioner_id_practitioner"), "practitioner", ["practitioner_id"], ["id"]
        )
        batch_op.create_index(batch_op.f("ix_appointment_practitioner_id"), ["practitioner_id"])
    with op.batch_alter_table("outcome", schema=None) as batch_op:
        batch_op.add_column(sa.Column("measure", sa.String(length=20), nullable=False, server_default="nprs"))
        batch_op.add_column(sa.Column("item", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outcome", schema=None) as batch_op:
        batch_op.drop_column("item")
        batch_op.drop_column("measure")
    for table in ("appointment", "treatment_plan"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_practitioner_id"))
            batch_op.drop_constraint(batch_op.f(f"fk_{table}_practitioner_id_practitioner"), type_="foreignkey")
            batch_op.drop_column("practitioner_id")
    op.drop_index(op.f("ix_practitioner_clinic_id"), table_name="practitioner")
    op.drop_table("practitioner")
