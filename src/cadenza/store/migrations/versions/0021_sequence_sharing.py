"""sequence sharing: folders, sharing and sequence templates

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 13:00:00

- sequences.folder (a folder name, NULL for none; indexed for the folder filter),
  sequences.sharing (private | team_use | team_edit; existing rows: team_use, which is
  what everyone could do before: see and enroll, not edit), sequences.is_template
  (existing rows: false). Plain ADD COLUMNs: no table rebuild on SQLite.
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sequences", sa.Column("folder", sa.String(100), nullable=True))
    op.add_column(
        "sequences",
        sa.Column("sharing", sa.String(20), nullable=False, server_default="team_use"),
    )
    op.add_column(
        "sequences",
        sa.Column("is_template", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )
    op.create_index("ix_sequences_folder", "sequences", ["folder"])


def downgrade() -> None:
    op.drop_index("ix_sequences_folder", table_name="sequences")
    # ALTER TABLE ... DROP COLUMN, not a batch rebuild: steps and enrollments point at it.
    for column in ("is_template", "sharing", "folder"):
        op.drop_column("sequences", column)
