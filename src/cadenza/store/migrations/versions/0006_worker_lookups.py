"""worker lookups: partial indexes for due reminders and running list enrollments

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 03:20:00

Each tick looks for reminders not yet sent and list-enrollment jobs still running;
without these, both lookups read every task and every job ever made.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_REMINDERS = "reminded_at IS NULL AND status = 'open'"
_RUNNING = "status = 'running'"


def upgrade() -> None:
    op.create_index(
        "ix_tasks_reminder_due",
        "tasks",
        ["remind_at"],
        sqlite_where=sa.text(_REMINDERS),
        postgresql_where=sa.text(_REMINDERS),
    )
    op.create_index(
        "ix_list_enroll_jobs_running",
        "list_enroll_jobs",
        ["id"],
        sqlite_where=sa.text(_RUNNING),
        postgresql_where=sa.text(_RUNNING),
    )


def downgrade() -> None:
    op.drop_index("ix_list_enroll_jobs_running", table_name="list_enroll_jobs")
    op.drop_index("ix_tasks_reminder_due", table_name="tasks")
