"""step variants: A/B variants of email steps, who got which, and the winners

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02 13:00:00

- sequence_steps.variants (JSON, null: no variants) and winner_after (the winner rule).
- step_runs.variant and messages.variant: the label an enrollment got at that step.
- step_variant_winners: a step's winner rule once decided (label, when, the figures).
Plain ADD COLUMNs: no table rebuild on SQLite.
"""

import sqlalchemy as sa
from alembic import op

import cadenza.store.types

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sequence_steps", sa.Column("variants", sa.JSON(), nullable=True))
    op.add_column("sequence_steps", sa.Column("winner_after", sa.Integer(), nullable=True))
    op.add_column("step_runs", sa.Column("variant", sa.String(1), nullable=True))
    op.add_column("messages", sa.Column("variant", sa.String(1), nullable=True))
    op.create_table(
        "step_variant_winners",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sequence_id", sa.Integer(), nullable=False),
        sa.Column("step_position", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(1), nullable=False),
        sa.Column("decided_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tallies", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sequence_id"],
            ["sequences.id"],
            name="fk_step_variant_winners_sequence_id_sequences",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_step_variant_winners"),
        sa.UniqueConstraint(
            "sequence_id", "step_position", name="uq_step_variant_winners_sequence_id"
        ),
    )


def downgrade() -> None:
    op.drop_table("step_variant_winners")
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not a batch rebuild (foreign keys).
    op.drop_column("messages", "variant")
    op.drop_column("step_runs", "variant")
    op.drop_column("sequence_steps", "winner_after")
    op.drop_column("sequence_steps", "variants")
