"""reports: the indexes reports over a period read

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 13:00:00

(The call outcomes reports count, tasks.outcome and the rest, came with 0016.)
- Indexes on the time columns a period filters on, so a report reads the rows of its
  period and not the whole history: messages.sent_at, enrollments.enrolled_at and
  ended_at, tasks.completed_at and due_at.
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_messages_sent_at", "messages", ["sent_at"]),
    ("ix_enrollments_enrolled_at", "enrollments", ["enrolled_at"]),
    ("ix_enrollments_ended_at", "enrollments", ["ended_at"]),
    ("ix_tasks_completed_at", "tasks", ["completed_at"]),
    ("ix_tasks_due_at", "tasks", ["due_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in INDEXES:
        op.drop_index(name, table_name=table)
