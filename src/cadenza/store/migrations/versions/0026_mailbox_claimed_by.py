"""mailboxes: which worker last claimed them, and when

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-04 17:40:00

Issue 15 §1 (bench/latency.py, PostgreSQL with two workers): a mailbox at its
per-minute limit holds nothing between two sends, so either worker claimed its next
email, and a mailbox moved between them about every other email — a new SMTP
connection each time, and a hand-over refused for a spacing the other worker's send
set. The claim now notes its worker on the mailbox row it updates anyway, and the
other workers leave the mailbox to it for a while (services/delivery/affinity.py).
Both columns start empty: every mailbox is free to any worker after the upgrade.
"""

import sqlalchemy as sa
from alembic import op

import cadenza.store.types

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


# Plain ADD COLUMN (both databases have it for a nullable column): a batch copy of the
# table would drop `mailboxes`, which other tables' rows refer to.
def upgrade() -> None:
    op.add_column("mailboxes", sa.Column("claimed_by", sa.String(length=200), nullable=True))
    op.add_column(
        "mailboxes",
        sa.Column("claimed_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("mailboxes", "claimed_at")
    op.drop_column("mailboxes", "claimed_by")
