"""messages and enrollments: no index that another one already leads with

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-06 00:00:00

Issue 15 §2. Every email writes its `messages` row three times (composed, handing,
sent) and its enrollment's row at least once, and on PostgreSQL each of those writes
changes an indexed column, so it adds an entry to every index of the table.
ix_messages_contact_id (contact_id) is the first column of ix_messages_contact_sent
(contact_id, sent_at), and ix_enrollments_sequence_id (sequence_id) the first of
ix_enrollments_sequence_contact (sequence_id, contact_id): each lookup they served is a
range of the wider index, so they cost a write at every change and bought nothing.
"""

from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_messages_contact_id", table_name="messages")
    op.drop_index("ix_enrollments_sequence_id", table_name="enrollments")


def downgrade() -> None:
    op.create_index("ix_enrollments_sequence_id", "enrollments", ["sequence_id"])
    op.create_index("ix_messages_contact_id", "messages", ["contact_id"])
