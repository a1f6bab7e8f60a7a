"""Staff web app: roles admin/front_desk/practitioner, server-side sessions, failed-login counts,
handled flag on inbound replies, and indexes for patient search.

Existing ``staff`` accounts become ``front_desk`` (the role that did what ``staff`` did).

Revision ID: 0006
Revises: 0011
Create Date: 2026-12-01 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE staff_user SET role = 'front_desk' WHERE role = 'staff'")
    op.create_table(
        "staff_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_user_id"], ["staff_user.id"], name=op.f("fk_staff_session_staff_user_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_staff_session_token_hash")),
    )
    with op.batch_alter_table("staff_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_session_staff_user_id"), ["staff_user_id"], unique=False)
    op.create_table(
        "login_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failure")),
    )
    op.create_index("ix_login_failure_key_at", "login_failure", ["key", "at"], unique=False)
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("handled_by", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("handled_note", sa.Text(), nullable=True))
    # Search by name prefix within a clinic, case-insensitively (the staff search box).
    op.create_index(
        "ix_patient_clinic_last_name_lower",
        "patient",
        ["clinic_id", sa.text("lower(last_name)")],
        postgresql_ops={"lower(last_name)": "text_pattern_ops"},
    )
    op.create_index(
        "ix_patient_clinic_first_name_lower",
        "patient",
        ["clinic_id", sa.text("lower(first_name)")],
        postgresql_ops={"lower(first_name)": "text_pattern_ops"},
    )
    op.create_index(
        "ix_patient_clinic_email", "patient", ["clinic_id", "email"], postgresql_ops={"email": "text_pattern_ops"}
    )
    # The patient list's order (last name, first name, id): a page is read off the index, never sorted.
    op.create_index(
        "ix_patient_clinic_sort",
        "patient",
        ["clinic_id", sa.text("lower(last_name)"), sa.text("lower(first_name)"), "id"],
    )
    # Today's "invalid numbers": a handful of patients, found without reading the clinic's list.
    op.create_index(
        "ix_patient_phone_invalid",
        "patient",
        ["clinic_id"],
        postgresql_where=sa.text("phone_invalid"),
        sqlite_where=sa.text("phone_invalid"),
    )
    # Today's counters, scoped to a clinic through the patient: with the patient id (and channel) in the
    # index they are index-only scans instead of one heap visit per message (PostgreSQL; SQLite ignores INCLUDE).
    op.create_index(
        "ix_message_status_updated_at", "message", ["status", "updated_at"], postgresql_include=["patient_id"]
    )
    op.drop_index("ix_message_status_due_at", table_name="message")
    op.create_index(
        "ix_message_status_due_at", "message", ["status", "due_at"], postgresql_include=["patient_id", "channel"]
    )


def downgrade() -> None:
    op.drop_index("ix_message_status_updated_at", table_name="message")
    op.drop_index("ix_message_status_due_at", table_name="message")
    op.create_index("ix_message_status_due_at", "message", ["status", "due_at"])
    op.drop_index("ix_patient_clinic_sort", table_name="patient")
    op.drop_index("ix_patient_phone_invalid", table_name="patient")
    op.drop_index("ix_patient_clinic_email", table_name="patient")
    op.drop_index("ix_patient_clinic_first_name_lower", table_name="patient")
    op.drop_index("ix_patient_clinic_last_name_lower", table_name="patient")
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_column("handled_note")
        batch_op.drop_column("handled_by")
        batch_op.drop_column("handled_at")
    op.drop_index("ix_login_failure_key_at", table_name="login_failure")
    op.drop_table("login_failure")
    with op.batch_alter_table("staff_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_session_staff_user_id"))
    op.drop_table("staff_session")
    op.execute("UPDATE staff_user SET role = 'staff' WHERE role = 'front_desk'")
