"""task reminders per user and the daily task digest

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 13:00:00

- users.reminder_timing (none | at_due | before; existing rows: at_due, what reminders
  did before), reminder_minutes (0), digest_enabled (false), digest_hour (8). Plain ADD
  COLUMNs with server defaults: no table rebuild on SQLite.
- task_digests: one row per user and local day (unique), the digest's mailbox, status,
  task count, message id, due and claim times; a partial index over pending ones.
"""

import sqlalchemy as sa
from alembic import op

import cadenza.store.types

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("reminder_timing", sa.String(20), nullable=False, server_default="at_due"),
    )
    op.add_column(
        "users", sa.Column("reminder_minutes", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "users",
        sa.Column("digest_enabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "users", sa.Column("digest_hour", sa.Integer(), nullable=False, server_default="8")
    )
    op.create_table(
        "task_digests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("task_count", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("due_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_task_digests_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name="fk_task_digests_mailbox_id_mailboxes",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_task_digests"),
        sa.UniqueConstraint("user_id", "local_date", name="uq_task_digests_user_day"),
    )
    op.create_index(
        "ix_task_digests_pending",
        "task_digests",
        ["mailbox_id", "due_at"],
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_task_digests_pending", table_name="task_digests")
    op.drop_table("task_digests")
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not a batch rebuild (foreign keys
    # point at users).
    for column in ("digest_hour", "digest_enabled", "reminder_minutes", "reminder_timing"):
        op.drop_column("users", column)
