"""event causes: an event made by another one points back at it

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 05:00:00

- email_events.cause_event_id: the event that caused this one (a provider's complaint
  causes the contact's unsubscribe event); null for an event that arrived on its own.
  No foreign key, like enrollments.cause_event_id: a plain ADD COLUMN, with no table
  rebuild on SQLite (a rebuild would cascade deletes).
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("email_events", sa.Column("cause_event_id", sa.Integer(), nullable=True))
    op.create_index("ix_email_events_cause_event_id", "email_events", ["cause_event_id"])


def downgrade() -> None:
    op.drop_index("ix_email_events_cause_event_id", table_name="email_events")
    with op.batch_alter_table("email_events") as batch_op:
        batch_op.drop_column("cause_event_id")
