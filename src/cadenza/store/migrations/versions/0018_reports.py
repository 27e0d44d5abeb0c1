"""reports: call outcomes on tasks, and the indexes reports over a period read

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-02 13:00:00

- tasks.outcome (a key: connected, no_answer, ... or a team's own), duration_seconds,
  outcome_notes, logged_at: what a completed call or touch recorded. Plain ADD COLUMNs.
- Indexes on the time columns a period filters on, so a report reads the rows of its
  period and not the whole history: messages.sent_at, enrollments.enrolled_at and
  ended_at, tasks.completed_at and due_at.
"""

import sqlalchemy as sa
from alembic import op

import cadenza.store.types

revision = "0018"
down_revision = "0015"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_messages_sent_at", "messages", ["sent_at"]),
    ("ix_enrollments_enrolled_at", "enrollments", ["enrolled_at"]),
    ("ix_enrollments_ended_at", "enrollments", ["ended_at"]),
    ("ix_tasks_completed_at", "tasks", ["completed_at"]),
    ("ix_tasks_due_at", "tasks", ["due_at"]),
)
TASK_COLUMNS = ("logged_at", "outcome_notes", "duration_seconds", "outcome")


def upgrade() -> None:
    op.add_column("tasks", sa.Column("outcome", sa.String(50), nullable=True))
    op.add_column("tasks", sa.Column("duration_seconds", sa.Integer(), nullable=True))
    op.add_column("tasks", sa.Column("outcome_notes", sa.Text(), nullable=True))
    op.add_column(
        "tasks",
        sa.Column("logged_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=True),
    )
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in INDEXES:
        op.drop_index(name, table_name=table)
    for column in TASK_COLUMNS:
        op.drop_column("tasks", column)
