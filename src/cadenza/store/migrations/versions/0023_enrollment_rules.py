"""enrollment rules: who may override them, and the lookups they make

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02 13:00:00

- users.can_override_enrollment_rules (existing rows: false): a member may enroll a
  contact an enrollment rule refuses (admins always may). A plain ADD COLUMN.
- ix_messages_contact_sent (contact_id, sent_at): when each contact was last emailed,
  for "days since last emailed", read from the index for a whole batch at once.
- ix_enrollments_sequence_contact (sequence_id, contact_id): whether contacts were ever
  in a sequence, for the re-enrollment rule "once".
The rules themselves are sequence settings (sequences.settings JSON) and CADENZA_*
variables: no column.
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column(
            "can_override_enrollment_rules",
            sa.Boolean(),
            nullable=False,
            server_default=sa.false(),
        ),
    )
    op.create_index("ix_messages_contact_sent", "messages", ["contact_id", "sent_at"])
    op.create_index("ix_enrollments_sequence_contact", "enrollments", ["sequence_id", "contact_id"])


def downgrade() -> None:
    op.drop_index("ix_enrollments_sequence_contact", table_name="enrollments")
    op.drop_index("ix_messages_contact_sent", table_name="messages")
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not a batch rebuild: rebuilding users
    # would trip the foreign keys that point at it.
    op.drop_column("users", "can_override_enrollment_rules")
