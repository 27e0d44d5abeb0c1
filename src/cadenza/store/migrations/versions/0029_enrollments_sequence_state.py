"""enrollments: a sequence's enrollments by state, newest first

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-05 00:00:00

Issue 15 §4 (bench/large.py, a sequence's page). The page lists the sequence's 20
newest running enrollments and counts its live ones per mailbox that misses replies.
With an index on the sequence and another on the state, PostgreSQL crossed the two in a
BitmapAnd: the sequence's every enrollment (finished ones included, 10,200 a sequence
with --scale 1.0) with every active enrollment of the installation (100,000), then
sorted the matches, for 20 rows; SQLite walked the active ones newest first until it
had 20 of the sequence. ix_enrollments_sequence_state_id (sequence_id, state, id) is
read backwards from the sequence's newest active enrollment and stops after 20, and
holds the live ones of a sequence as two ranges.
"""

from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_enrollments_sequence_state_id", "enrollments", ["sequence_id", "state", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_enrollments_sequence_state_id", table_name="enrollments")
