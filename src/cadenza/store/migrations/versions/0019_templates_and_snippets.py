"""templates and snippets: the team's email template library and short named snippets

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 13:00:00

- email_templates: owner, name, subject, body, folder, sharing (private | team_use |
  team_edit), archived_at.
- snippets: owner, name (the `#name` shortcut, unique per owner), body, sharing.
- sequence_steps.template_id and messages.template_id: the template a step uses by
  reference, and the one a message was composed from (per-template figures). Plain
  ADD COLUMNs without foreign keys: no table rebuild on SQLite.
"""

import sqlalchemy as sa
from alembic import op

import cadenza.store.types

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def _stamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "email_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("folder", sa.String(100), nullable=True),
        sa.Column("sharing", sa.String(20), nullable=False),
        sa.Column("archived_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=True),
        *_stamps(),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_email_templates_owner_id_users"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_email_templates"),
    )
    op.create_index("ix_email_templates_owner_id", "email_templates", ["owner_id"])
    op.create_table(
        "snippets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sharing", sa.String(20), nullable=False),
        *_stamps(),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_snippets_owner_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_snippets"),
        sa.UniqueConstraint("owner_id", "name", name="uq_snippets_owner_id"),
    )
    op.create_index("ix_snippets_owner_id", "snippets", ["owner_id"])
    for table in ("sequence_steps", "messages"):
        op.add_column(table, sa.Column("template_id", sa.Integer(), nullable=True))
        op.create_index(f"ix_{table}_template_id", table, ["template_id"])


def downgrade() -> None:
    for table in ("messages", "sequence_steps"):
        op.drop_index(f"ix_{table}_template_id", table_name=table)
        op.drop_column(table, "template_id")
    op.drop_index("ix_snippets_owner_id", table_name="snippets")
    op.drop_table("snippets")
    op.drop_index("ix_email_templates_owner_id", table_name="email_templates")
    op.drop_table("email_templates")
