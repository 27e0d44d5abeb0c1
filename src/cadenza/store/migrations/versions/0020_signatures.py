"""signatures: each user's HTML email signature and meeting (booking) link

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 13:00:00

- users.signature_html (sanitised HTML, at most 10,000 characters) and
  users.meeting_link (an http(s) URL, at most 2,000 characters), both nullable.
  Plain ADD COLUMNs: no table rebuild on SQLite.
- The Cal.com and Calendly signing secrets need no schema: they are app_secrets rows
  (`booking_webhook:<provider>`), sealed like the link key.
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("signature_html", sa.Text(), nullable=True))
    op.add_column("users", sa.Column("meeting_link", sa.String(2000), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not a batch rebuild: rebuilding users
    # would trip the foreign keys that point at it.
    op.drop_column("users", "meeting_link")
    op.drop_column("users", "signature_html")
