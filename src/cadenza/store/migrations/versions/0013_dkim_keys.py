"""dkim keys: one signing key per sending domain

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 08:10:00

- dkim_keys: the domain (unique, lower-case), its selector, the private key sealed under
  the installation's key (never in clear), the public key as the DNS record's p= value.
"""

import sqlalchemy as sa
from alembic import op

import cadenza.store.types

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dkim_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("domain", sa.String(253), nullable=False, unique=True),
        sa.Column("selector", sa.String(63), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("created_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dkim_keys")
