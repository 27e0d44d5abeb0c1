"""a contact's data: suppressions of erased addresses, retention of bodies and events

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 08:00:00

- suppressions: the keyed hash of each erased contact's address (and the erased id), so
  an import or an API call cannot create that contact again by accident.
- job_marks: when a clocked job of the worker last finished (retention runs at most once
  per interval, whichever worker gets to it).
- messages.body_removed_at: the retention policy replaced the bodies with a note; a
  partial index over the messages that still hold theirs keeps the job's lookup to the
  rows it may change. A plain ADD COLUMN: no table rebuild on SQLite.
- ix_email_events_kind_occurred: old opens and clicks found by a range, not a scan.
"""

import sqlalchemy as sa
from alembic import op

import cadenza.store.types

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email_hash", sa.String(64), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("created_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_suppressions"),
        sa.UniqueConstraint("email_hash", name="uq_suppressions_email_hash"),
    )
    op.create_table(
        "job_marks",
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("ran_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_job_marks"),
    )
    op.add_column(
        "messages",
        sa.Column("body_removed_at", cadenza.store.types.UTCDateTime(timezone=True)),
    )
    op.create_index(
        "ix_messages_bodies_kept",
        "messages",
        ["created_at"],
        sqlite_where=sa.text("body_removed_at IS NULL"),
        postgresql_where=sa.text("body_removed_at IS NULL"),
    )
    op.create_index("ix_email_events_kind_occurred", "email_events", ["kind", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_email_events_kind_occurred", table_name="email_events")
    op.drop_index("ix_messages_bodies_kept", table_name="messages")
    # A plain DROP COLUMN (SQLite 3.35+): a batch rebuild of messages under
    # foreign_keys=ON would cascade into delivery_attempts.
    op.execute("ALTER TABLE messages DROP COLUMN body_removed_at")
    op.drop_table("job_marks")
    op.drop_table("suppressions")
