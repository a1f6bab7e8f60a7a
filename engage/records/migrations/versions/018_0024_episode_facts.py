"""Stored episode facts: one row per enrollment, so the Outcomes page reads 20,000 rows instead of 200,000 scores.

``episode_fact`` holds what :mod:`engage.outcomes.stored_facts` computed from an enrollment's visits and pain
scores (its first and last sessions, baseline, latest follow-up, the first follow-up meeting the MCID, the
chart's points), with ``version`` (bumped by every write to those inputs) and ``computed_version`` (the
version the facts reflect). No rows are written here: a missing row is computed the first time the page
reads the enrollment.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "episode_fact",
        sa.Column("enrollment_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("computed_version", sa.Integer(), nullable=True),
        sa.Column("first_start", sa.Float(), nullable=True),
        sa.Column("first_end", sa.Float(), nullable=True),
        sa.Column("last_start", sa.Float(), nullable=True),
        sa.Column("visit_practitioner_id", sa.Integer(), nullable=True),
        sa.Column("baseline", sa.Integer(), nullable=True),
        sa.Column("follow_ups", sa.Integer(), server_default="0", nullable=False),
        sa.Column("latest_at", sa.Float(), nullable=True),
        sa.Column("latest", sa.Integer(), nullable=True),
        sa.Column("latest_sessions", sa.Integer(), nullable=True),
        sa.Column("mcid_at", sa.Float(), nullable=True),
        sa.Column("mcid_sessions", sa.Integer(), nullable=True),
        sa.Column("pain_points", sa.JSON().with_variant(postgresql.ARRAY(sa.Integer()), "postgresql"), nullable=True),
        sa.ForeignKeyConstraint(
            ["enrollment_id"], ["enrollment.id"], name=op.f("fk_episode_fact_enrollment_id_enrollment")
        ),
        sa.PrimaryKeyConstraint("enrollment_id", name=op.f("pk_episode_fact")),
    )


def downgrade() -> None:
    op.drop_table("episode_fact")
