"""A clinic's own versions of a sequence (the sequence editor, issue 23), and the version an enrollment follows.

``sequence_versions`` holds per clinic and sequence key at most one draft (``version`` NULL) and the
published versions 1..N; ``enrollment.sequence_version`` is the version an enrollment is planned from
(NULL: the shipped library file, as every enrollment before this migration); ``clinic.default_sequence`` is
the sequence a synced appointment without one is planned in. Added in place.

Revision ID: 0023
Revises: 0019
Create Date: 2026-12-06 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sequence_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("sequence_key", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("texts", sa.JSON(), nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(320), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(320), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"], name="fk_sequence_versions_clinic_id_clinic"),
        sa.PrimaryKeyConstraint("id", name="pk_sequence_versions"),
        sa.UniqueConstraint("clinic_id", "sequence_key", "version", name="uq_sequence_versions_clinic_key_version"),
    )
    op.create_index(
        "uq_sequence_versions_draft",
        "sequence_versions",
        ["clinic_id", "sequence_key"],
        unique=True,
        postgresql_where=sa.text("version IS NULL"),
        sqlite_where=sa.text("version IS NULL"),
    )
    op.add_column("enrollment", sa.Column("sequence_version", sa.Integer(), nullable=True))
    op.add_column("clinic", sa.Column("default_sequence", sa.String(100), nullable=True))


def downgrade() -> None:
    # In place on SQLite too (3.35+ drops a column without a table copy).
    op.execute("ALTER TABLE clinic DROP COLUMN default_sequence")
    op.execute("ALTER TABLE enrollment DROP COLUMN sequence_version")
    op.drop_index("uq_sequence_versions_draft", table_name="sequence_versions")
    op.drop_table("sequence_versions")
