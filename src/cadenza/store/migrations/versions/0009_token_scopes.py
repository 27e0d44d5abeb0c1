"""token scopes and revocable events

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-02 01:00:00

`api_tokens.scopes`: NULL is a full token (its user's rights); `events` limits a token
to posting events, for an integration an admin set up. `email_events.revoked_at`: an
admin undid an event posted by mistake (a complaint or unsubscribe); the row is kept.
"""

import sqlalchemy as sa
from alembic import op

import cadenza.store.types

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("scopes", sa.String(200), nullable=True))
    with op.batch_alter_table("email_events") as batch:
        revoked_at = cadenza.store.types.UTCDateTime(timezone=True)
        batch.add_column(sa.Column("revoked_at", revoked_at, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("email_events") as batch:
        batch.drop_column("revoked_at")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("scopes")
