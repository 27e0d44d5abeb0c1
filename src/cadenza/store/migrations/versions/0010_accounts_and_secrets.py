"""accounts and secrets: session epochs, deactivation, a shared login brake, room for sealed values

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 01:00:00

- users.session_epoch: every session cookie carries it; raising it ends them all at once
  (logout, password or role change, deactivation).
- users.deactivated_at: a deactivated user cannot sign in nor use a token.
- login_failures: failed sign-ins by account and client address, shared by every process.
- mailbox passwords, webhook secrets and app secrets are stored sealed (longer than the
  clear text): their columns become Text. Existing clear values are sealed at the next
  start (`cadenza db upgrade`, `serve`, `worker`), with the key kept outside the database.
"""

import sqlalchemy as sa
from alembic import op

import cadenza.store.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_WIDENED = (
    ("mailboxes", "smtp_password", sa.String(500)),
    ("mailboxes", "imap_password", sa.String(500)),
    ("webhooks", "secret", sa.String(100)),
    ("app_secrets", "value", sa.String(200)),
)


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild: on SQLite a rebuild would cascade deletes).
    op.add_column(
        "users", sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "users", sa.Column("deactivated_at", cadenza.store.types.UTCDateTime(timezone=True))
    )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account", sa.String(320), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("at", cadenza.store.types.UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_login_failures_key", "login_failures", ["account", "address", "at"])
    op.create_index("ix_login_failures_at", "login_failures", ["at"])
    if op.get_bind().dialect.name != "sqlite":  # SQLite never enforced the lengths
        for table, column, old in _WIDENED:
            op.alter_column(table, column, type_=sa.Text(), existing_type=old)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        for table, column, old in _WIDENED:
            op.alter_column(table, column, type_=old, existing_type=sa.Text())
    op.drop_index("ix_login_failures_at", table_name="login_failures")
    op.drop_index("ix_login_failures_key", table_name="login_failures")
    op.drop_table("login_failures")
    op.drop_column("users", "deactivated_at")  # plain DROP COLUMN: no rebuild, see upgrade
    op.drop_column("users", "session_epoch")
