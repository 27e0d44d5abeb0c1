"""mailbox oauth: mailboxes that log in with OAuth 2.0 tokens, and connects in flight

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 08:00:00

- mailboxes.auth_method (password | oauth2; existing rows: password), oauth_provider,
  oauth_access_token and oauth_refresh_token (sealed), oauth_expires_at. Plain ADD
  COLUMNs: no table rebuild on SQLite.
- oauth_states: one row per connect started and not yet come back (state, user, the
  sealed PKCE verifier, the redirect URI, expiry).
"""

import sqlalchemy as sa
from alembic import op

import cadenza.store.types

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "mailboxes",
        sa.Column("auth_method", sa.String(20), nullable=False, server_default="password"),
    )
    op.add_column("mailboxes", sa.Column("oauth_provider", sa.String(20), nullable=True))
    op.add_column("mailboxes", sa.Column("oauth_access_token", sa.Text(), nullable=True))
    op.add_column("mailboxes", sa.Column("oauth_refresh_token", sa.Text(), nullable=True))
    op.add_column(
        "mailboxes",
        sa.Column(
            "oauth_expires_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=True
        ),
    )
    op.create_table(
        "oauth_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column(
            "code_verifier", sa.String(500).with_variant(sa.Text(), "postgresql"), nullable=False
        ),
        sa.Column("redirect_uri", sa.String(500), nullable=False),
        sa.Column("created_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_oauth_states_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_oauth_states"),
        sa.UniqueConstraint("state", name="uq_oauth_states_state"),
    )
    op.create_index("ix_oauth_states_user_id", "oauth_states", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_oauth_states_user_id", table_name="oauth_states")
    op.drop_table("oauth_states")
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not a batch rebuild: rebuilding
    # mailboxes would trip the foreign keys that point at it.
    for column in (
        "oauth_expires_at",
        "oauth_refresh_token",
        "oauth_access_token",
        "oauth_provider",
        "auth_method",
    ):
        op.drop_column("mailboxes", column)
