"""Staff multi-factor sign-in and an atomic sign-in throttle.

- ``staff_factor``: authenticator apps (TOTP), passkeys (WebAuthn) and single-use recovery codes.
- ``clinic.mfa_required``: ``none`` | ``admins`` | ``all``. Existing clinics get ``none`` (an upgrade must not
  send every admin to enrollment in the middle of a clinic day); new clinics default to ``admins`` (the model).
- ``staff_user.email`` is unique per clinic instead of everywhere: a clinic adding a staff address must not
  learn that another clinic has it, and one person may work at two clinics.
- ``login_counter`` replaces ``login_failure``: one row per key counted with an upsert, so parallel wrong
  passwords cannot all read "fewer than five so far". Open failure counts are not carried over (at worst an
  attacker gets one fresh window at upgrade time).

Revision ID: 0014
Revises: 0016
Create Date: 2026-12-06 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_factor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.Column("credential_id", sa.String(length=400), nullable=True),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("code_hash", sa.String(length=200), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_user_id"], ["staff_user.id"], name=op.f("fk_staff_factor_staff_user_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_factor")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_staff_factor_credential_id")),
    )
    op.create_index(op.f("ix_staff_factor_staff_user_id"), "staff_factor", ["staff_user_id"])
    op.add_column(
        "clinic", sa.Column("mfa_required", sa.String(length=20), server_default=sa.text("'none'"), nullable=False)
    )
    op.create_table(
        "login_counter",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_counter")),
    )
    op.create_index(op.f("ix_login_counter_window_start"), "login_counter", ["window_start"])
    op.drop_index("ix_login_failure_key_at", table_name="login_failure")
    op.drop_table("login_failure")
    with op.batch_alter_table("staff_user") as batch_op:
        batch_op.drop_constraint("uq_staff_user_email", type_="unique")
        batch_op.create_unique_constraint("uq_staff_user_clinic_email", ["clinic_id", "email"])
        batch_op.create_index("ix_staff_user_email", ["email"])


def downgrade() -> None:
    with op.batch_alter_table("staff_user") as batch_op:  # fails if two clinics now share an address: by design
        batch_op.drop_index("ix_staff_user_email")
        batch_op.drop_constraint("uq_staff_user_clinic_email", type_="unique")
        batch_op.create_unique_constraint("uq_staff_user_email", ["email"])
    op.create_table(
        "login_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failure")),
    )
    op.create_index("ix_login_failure_key_at", "login_failure", ["key", "at"], unique=False)
    op.drop_index(op.f("ix_login_counter_window_start"), table_name="login_counter")
    op.drop_table("login_counter")
    with op.batch_alter_table("clinic") as batch_op:
        batch_op.drop_column("mfa_required")
    op.drop_index(op.f("ix_staff_factor_staff_user_id"), table_name="staff_factor")
    op.drop_table("staff_factor")
