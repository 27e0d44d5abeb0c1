"""task outcomes: what a rep logs when a call or a LinkedIn touch is done

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 13:00:00

- tasks.outcome (the outcome key: built in, domain/enums.CallOutcome/LinkedInTouch, or
  one of task_outcomes), duration_seconds, outcome_notes, logged_at. Plain ADD COLUMNs.
- task_outcomes: the team's own outcomes (key, label, task type, ends_enrollment).
- ix_tasks_outcome_logged: reports count calls by outcome over a period.
"""

import sqlalchemy as sa
from alembic import op

import cadenza.store.types

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("outcome", sa.String(50), nullable=True))
    op.add_column("tasks", sa.Column("duration_seconds", sa.Integer(), nullable=True))
    op.add_column("tasks", sa.Column("outcome_notes", sa.Text(), nullable=True))
    op.add_column(
        "tasks",
        sa.Column("logged_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_tasks_outcome_logged", "tasks", ["outcome", "logged_at"])
    op.create_table(
        "task_outcomes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(50), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("task_type", sa.String(20), nullable=False),
        sa.Column("ends_enrollment", sa.Boolean(), nullable=False),
        sa.Column("created_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_task_outcomes"),
        sa.UniqueConstraint("key", name="uq_task_outcomes_key"),
    )


def downgrade() -> None:
    op.drop_table("task_outcomes")
    op.drop_index("ix_tasks_outcome_logged", table_name="tasks")
    for column in ("logged_at", "outcome_notes", "duration_seconds", "outcome"):
        op.drop_column("tasks", column)
