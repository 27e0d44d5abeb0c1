"""sequence counters: a sequence's figures kept as append-only deltas

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 17:00:00

Issue 15 §4 (bench/large.py): a sequence's page, its analytics and its statistics
counted the sequence's enrollments, step runs, tasks, messages and events on every
request, a cost that followed the sequence's size. `sequence_counts` holds those
figures as deltas that the services write with each change and pages sum
(services/counters, docs/analytics.md *Counters*), read through
`ix_sequence_counts_sequence_day`.

The backfill counts the existing rows, one row per key, as services/counters/tally.py
does (the keys of domain/counters.py, written out here so that this revision keeps
meaning what it meant when later code changes): an upgraded installation shows the
same figures as before.
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

_INSERT = "INSERT INTO sequence_counts (sequence_id, step_position, variant, day, key, n)\n"


def _backfill(dialect: str) -> list[str]:
    if dialect == "postgresql":
        human = "e.data->>'flagged' IS NULL"

        def day(column: str) -> str:
            return f"CAST(({column} AT TIME ZONE 'UTC') AS date)"
    else:
        human = "json_extract(e.data, '$.flagged') IS NULL"

        def day(column: str) -> str:
            return f"date({column})"

    statements = [
        # enrollments by state; unenrolled ones by reason ('' for none)
        """
        SELECT sequence_id, 0, '', NULL,
               'enrollments:' || state
               || CASE WHEN state = 'unenrolled' THEN ':' || coalesce(reason, '') ELSE '' END,
               count(*)
        FROM enrollments
        GROUP BY sequence_id, state, reason
        """,
        # step runs by type (the step's type for positions the sequence no longer has)
        """
        SELECT e.sequence_id, r.step_position, coalesce(r.variant, ''), NULL,
               'steps:' || r.step_type, count(*)
        FROM step_runs r JOIN enrollments e ON e.id = r.enrollment_id
        GROUP BY e.sequence_id, r.step_position, coalesce(r.variant, ''), r.step_type
        """,
        # step runs by the statuses shown
        """
        SELECT e.sequence_id, r.step_position, coalesce(r.variant, ''), NULL,
               'runs:' || r.status, count(*)
        FROM step_runs r JOIN enrollments e ON e.id = r.enrollment_id
        WHERE r.status IN ('sent', 'failed', 'unknown')
        GROUP BY e.sequence_id, r.step_position, coalesce(r.variant, ''), r.status
        """,
        # a step's tasks, open and completed
        """
        SELECT e.sequence_id, r.step_position, coalesce(r.variant, ''), NULL,
               'tasks:' || t.status, count(*)
        FROM tasks t
        JOIN step_runs r ON r.id = t.step_run_id
        JOIN enrollments e ON e.id = r.enrollment_id
        WHERE t.status IN ('open', 'completed')
        GROUP BY e.sequence_id, r.step_position, coalesce(r.variant, ''), t.status
        """,
        # a step's bounced emails
        """
        SELECT e.sequence_id, r.step_position, coalesce(r.variant, ''), NULL, 'bounced',
               count(*)
        FROM messages m
        JOIN step_runs r ON r.id = m.step_run_id
        JOIN enrollments e ON e.id = r.enrollment_id
        WHERE m.bounced_at IS NOT NULL
        GROUP BY e.sequence_id, r.step_position, coalesce(r.variant, '')
        """,
        # contacts emailed: enrollments with an email sent
        """
        SELECT e.sequence_id, 0, '', NULL, 'emailed', count(DISTINCT e.id)
        FROM enrollments e JOIN messages m ON m.enrollment_id = e.id
        WHERE m.sent_at IS NOT NULL
        GROUP BY e.sequence_id
        """,
        # a step's messages replied to / with a meeting booked
        """
        SELECT en.sequence_id, r.step_position, coalesce(r.variant, ''), NULL,
               CASE e.kind WHEN 'reply' THEN 'replied' ELSE 'meetings_booked' END,
               count(DISTINCT m.id)
        FROM email_events e
        JOIN messages m ON m.id = e.message_id
        JOIN step_runs r ON r.id = m.step_run_id
        JOIN enrollments en ON en.id = r.enrollment_id
        WHERE e.kind IN ('reply', 'meeting_booked')
        GROUP BY en.sequence_id, r.step_position, coalesce(r.variant, ''), e.kind
        """,
        # enrollments with a reply / a meeting booked
        """
        SELECT en.sequence_id, 0, '', NULL,
               CASE e.kind WHEN 'reply' THEN 'enrollments_replied'
                    ELSE 'enrollments_meetings_booked' END,
               count(DISTINCT en.id)
        FROM email_events e JOIN enrollments en ON en.id = e.enrollment_id
        WHERE e.kind IN ('reply', 'meeting_booked')
        GROUP BY en.sequence_id, e.kind
        """,
        # the daily series
        f"""
        SELECT sequence_id, 0, '', {day("enrolled_at")}, 'enrolled', count(*)
        FROM enrollments GROUP BY sequence_id, {day("enrolled_at")}
        """,
        f"""
        SELECT e.sequence_id, 0, '', {day("m.sent_at")}, 'sent', count(*)
        FROM messages m JOIN enrollments e ON e.id = m.enrollment_id
        WHERE m.sent_at IS NOT NULL
        GROUP BY e.sequence_id, {day("m.sent_at")}
        """,
        f"""
        SELECT en.sequence_id, 0, '', {day("e.occurred_at")},
               CASE e.kind WHEN 'open' THEN 'opened' ELSE 'replied' END, count(*)
        FROM email_events e JOIN enrollments en ON en.id = e.enrollment_id
        WHERE (e.kind = 'open' AND {human}) OR e.kind = 'reply'
        GROUP BY en.sequence_id, {day("e.occurred_at")}, e.kind
        """,
    ]
    # human opens and clicks, messages with one, flagged ones (position 0: on no step)
    for kind in ("open", "click"):
        for key, count in (
            (f"{kind}s", f"count(CASE WHEN {human} THEN 1 END)"),
            (f"{kind}ed", f"count(DISTINCT CASE WHEN {human} THEN e.message_id END)"),
            (f"flagged_{kind}s", f"count(CASE WHEN NOT ({human}) THEN 1 END)"),
        ):
            statements.append(
                f"""
                SELECT en.sequence_id, coalesce(r.step_position, 0), coalesce(r.variant, ''),
                       NULL, '{key}', {count}
                FROM email_events e
                JOIN messages m ON m.id = e.message_id
                JOIN enrollments en ON en.id = m.enrollment_id
                LEFT JOIN step_runs r ON r.id = m.step_run_id
                WHERE e.kind = '{kind}'
                GROUP BY en.sequence_id, coalesce(r.step_position, 0), coalesce(r.variant, '')
                """
            )
    return [_INSERT + statement.strip() for statement in statements]


def upgrade() -> None:
    op.create_table(
        "sequence_counts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sequence_id", sa.Integer(), nullable=False),
        sa.Column("step_position", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(1), nullable=False),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sequence_counts"),
    )
    op.create_index("ix_sequence_counts_sequence_day", "sequence_counts", ["sequence_id", "day"])
    for statement in _backfill(op.get_bind().dialect.name):
        op.execute(statement)
    op.execute("DELETE FROM sequence_counts WHERE n = 0")  # as the services' tally: no row


def downgrade() -> None:
    op.drop_index("ix_sequence_counts_sequence_day", table_name="sequence_counts")
    op.drop_table("sequence_counts")
