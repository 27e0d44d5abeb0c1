"""signals: IMAP settings per mailbox, inbox cursors, out-of-office resumption, causes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 01:45:20.451873
"""

import sqlalchemy as sa
from alembic import op

import cadenza.store.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox_cursors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("folder", sa.String(length=255), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("polled_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_inbox_cursors_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_cursors")),
        sa.UniqueConstraint("mailbox_id", "folder", name=op.f("uq_inbox_cursors_mailbox_id")),
    )
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("resume_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("cause_event_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_enrollments_resume_at",
            ["resume_at"],
            unique=False,
            sqlite_where=sa.text("resume_at IS NOT NULL"),
            postgresql_where=sa.text("resume_at IS NOT NULL"),
        )

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("bounced_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=True)
        )

    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("imap_host", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("imap_port", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("imap_security", sa.String(length=20), server_default="tls", nullable=False)
        )
        batch_op.add_column(sa.Column("imap_username", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("imap_password", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("bounced_at")

    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_column("imap_password")
        batch_op.drop_column("imap_username")
        batch_op.drop_column("imap_security")
        batch_op.drop_column("imap_port")
        batch_op.drop_column("imap_host")

    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_enrollments_resume_at",
            sqlite_where=sa.text("resume_at IS NOT NULL"),
            postgresql_where=sa.text("resume_at IS NOT NULL"),
        )
        batch_op.drop_column("cause_event_id")
        batch_op.drop_column("resume_at")

    op.drop_table("inbox_cursors")
