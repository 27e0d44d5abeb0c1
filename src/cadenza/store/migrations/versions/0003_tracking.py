"""tracking: message tracking ids and links, generated secrets, events by message

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 01:57:39.019909

Self-contained: only adds. On SQLite every step is a plain ALTER/CREATE (a unique
index rather than a constraint), so the messages table is not rebuilt.
"""

import sqlalchemy as sa
from alembic import op

import cadenza.store.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_secrets",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_app_secrets")),
    )
    with op.batch_alter_table("email_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_email_events_message_id"), ["message_id"], unique=False
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tracking_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("links", sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f("ix_messages_tracking_id"), ["tracking_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_tracking_id"))
        batch_op.drop_column("links")
        batch_op.drop_column("tracking_id")
    with op.batch_alter_table("email_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_events_message_id"))
    op.drop_table("app_secrets")
