"""Each enrollment's reassessment prompts kept with its stored episode facts, and a log their changes feed.

The Outcomes page counted every prompt of the clinic on each request (60,000 for 20,000 episodes: sorted,
numbered and grouped again each time, half of the summary's database time). ``episode_fact`` now also holds
the prompts sent and answered within 72 hours by channel, and the times of the unanswered ones after the newest
answer. Delivery changes a prompt's status in bulk SQL, past the ORM, so triggers on ``message`` append the
enrollment to ``episode_stale`` whenever a reassessment prompt that counts (sent, delivered or unknown) is
inserted, changes status or times, or is deleted; the reader takes the clinic's rows and computes those
enrollments again. Appending takes no lock a reader holds. The chart's points become packed 16-bit codes,
which the web process counts faster than the database unnests an array. Every stored row is computed again
(its new columns are empty until then).

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-06 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

_COUNTED = "('sent', 'delivered', 'unknown')"
#: (trigger, event, the row it reads, when) on message.
_TRIGGERS = (
    ("message_prompt_inserted", "INSERT", "NEW", f"NEW.status IN {_COUNTED}"),
    (
        "message_prompt_changed",
        "UPDATE OF status, sent_at, handed_at, due_at",
        "NEW",
        f"(OLD.status IN {_COUNTED} OR NEW.status IN {_COUNTED})",
    ),
    ("message_prompt_deleted", "DELETE", "OLD", f"OLD.status IN {_COUNTED}"),
)


def _when(row: str, condition: str) -> str:
    return f"{row}.template = 'reassessment' AND {row}.enrollment_id IS NOT NULL AND {condition}"


def upgrade() -> None:
    for channel in ("sms", "email"):
        op.add_column("episode_fact", sa.Column(f"prompts_{channel}", sa.Integer(), server_default="0", nullable=False))
        op.add_column("episode_fact", sa.Column(f"in_time_{channel}", sa.Integer(), server_default="0", nullable=False))
    op.add_column(
        "episode_fact",
        sa.Column("unanswered_sent", sa.JSON().with_variant(postgresql.ARRAY(sa.Float()), "postgresql"), nullable=True),
    )
    # The chart's points become packed 16-bit codes (read with the facts, counted by the web process).
    op.drop_column("episode_fact", "pain_points")
    op.add_column("episode_fact", sa.Column("pain_points", sa.LargeBinary(), nullable=True))
    op.execute("UPDATE episode_fact SET computed_version = NULL")
    op.create_table(
        "episode_stale",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("enrollment_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_episode_stale")),
    )
    op.create_index("ix_episode_stale_clinic_id", "episode_stale", ["clinic_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION episode_prompt_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' THEN
                    INSERT INTO episode_stale (clinic_id, enrollment_id) VALUES (OLD.clinic_id, OLD.enrollment_id);
                ELSE
                    INSERT INTO episode_stale (clinic_id, enrollment_id) VALUES (NEW.clinic_id, NEW.enrollment_id);
                END IF;
                RETURN NULL;
            END $$""")
        for name, event, row, condition in _TRIGGERS:
            op.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON message FOR EACH ROW "
                f"WHEN ({_when(row, condition)}) EXECUTE FUNCTION episode_prompt_changed()"
            )
    else:
        for name, event, row, condition in _TRIGGERS:
            op.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON message FOR EACH ROW WHEN {_when(row, condition)} "
                f"BEGIN INSERT INTO episode_stale (clinic_id, enrollment_id) "
                f"VALUES ({row}.clinic_id, {row}.enrollment_id); END"
            )


def downgrade() -> None:
    for name, _, _, _ in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name}" + (" ON message" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION episode_prompt_changed()")
    op.drop_index("ix_episode_stale_clinic_id", table_name="episode_stale")
    op.drop_table("episode_stale")
    with op.batch_alter_table("episode_fact") as batch:
        for column in (
            "unanswered_sent",
            "in_time_email",
            "prompts_email",
            "in_time_sms",
            "prompts_sms",
            "pain_points",
        ):
            batch.drop_column(column)
    op.add_column(
        "episode_fact",
        sa.Column("pain_points", sa.JSON().with_variant(postgresql.ARRAY(sa.Integer()), "postgresql"), nullable=True),
    )
    op.execute("UPDATE episode_fact SET computed_version = NULL")
