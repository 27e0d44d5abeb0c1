"""worker heartbeat: each worker's last tick and counters, for /readyz and /metrics

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 08:00:00

- workers: one row per running worker (its id in claims), written at most every few
  seconds from its tick: when it last ticked and a snapshot of its metrics (JSON).
  /metrics and /readyz read it, whichever process or host serves them.
- Indexes /metrics counts from, so that a scrape never reads the large rows themselves:
  ix_messages_unsettled (sends in flight or awaiting review, by mailbox),
  ix_step_runs_waiting (pending runs held for a reason), ix_enrollments_state,
  ix_webhook_deliveries_status.
"""

import sqlalchemy as sa
from alembic import op

import cadenza.store.types

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("started_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_tick_at", cadenza.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    op.create_index(op.f("ix_workers_last_tick_at"), "workers", ["last_tick_at"])
    op.create_index(
        "ix_messages_unsettled",
        "messages",
        ["mailbox_id", "status"],
        sqlite_where=sa.text("status IN ('handing', 'unknown')"),
        postgresql_where=sa.text("status IN ('handing', 'unknown')"),
    )
    waiting = "status = 'pending' AND wait_reason IS NOT NULL"
    op.create_index(
        "ix_step_runs_waiting",
        "step_runs",
        ["mailbox_id", "wait_reason", "due_at"],
        sqlite_where=sa.text(waiting),
        postgresql_where=sa.text(waiting),
    )
    op.create_index("ix_enrollments_state", "enrollments", ["state", "needs_attention"])
    op.create_index("ix_webhook_deliveries_status", "webhook_deliveries", ["status"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_status", table_name="webhook_deliveries")
    op.drop_index("ix_enrollments_state", table_name="enrollments")
    op.drop_index("ix_step_runs_waiting", table_name="step_runs")
    op.drop_index("ix_messages_unsettled", table_name="messages")
    op.drop_index(op.f("ix_workers_last_tick_at"), table_name="workers")
    op.drop_table("workers")
