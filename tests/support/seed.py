"""Bulk seeding of due email steps for the many-worker tests and the benchmarks.

Enrolling thousands of contacts through the service one request at a time would
dominate those runs; this writes the same rows (what `enroll` writes) in bulk.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, text

from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.accounts.users import create_user
from cadenza.services.context import Context
from cadenza.services.sequences.catalog import create_sequence
from cadenza.store.models import Contact, Enrollment, StepRun

ONE_EMAIL = [{"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"}]
FOLLOW_UP = {"type": "email", "delay_days": 3, "thread_with_step": 1, "body": "<p>Following up</p>"}


def seed_due_emails(
    ctx: Context,
    count: int,
    *,
    mailboxes: int = 1,
    smtp_port: int | None = None,
    per_minute_limit: int = 100_000,
    daily_limit: int = 10_000_000,
    due_at: datetime | None = None,
    chunk: int = 5_000,
    steps: int = 1,
) -> list[int]:
    """`count` enrollments of a sequence of `steps` emails (the later ones three days
    apart, threaded with the first), their first due, spread over mailboxes; returns
    mailbox ids. With more than one step, each send schedules the enrollment's next one,
    as most sends of a real sequence do."""
    tag = uuid.uuid4().hex[:8]  # seeding twice into one database must not collide
    user = create_user(ctx, f"seed-{tag}@example.com", firstname="Sam")
    boxes = [
        create_mailbox(
            ctx, user.id, f"box{i}-{tag}@example.com",
            transport="smtp" if smtp_port else "capture",
            smtp_host="127.0.0.1" if smtp_port else None,
            smtp_port=smtp_port, smtp_security="none",
            per_minute_limit=per_minute_limit, daily_limit=daily_limit,
        ).id
        for i in range(mailboxes)
    ]  # fmt: skip
    emails = ONE_EMAIL + [FOLLOW_UP] * (steps - 1)
    sequence = create_sequence(ctx, user.id, "Seeded", steps=emails)
    snapshot = [
        {"subject": None, **step, "position": position, "delay_days": step.get("delay_days", 0),
         "delay_hours": 0, "thread_with_step": step.get("thread_with_step"),
         "task_type": None, "task_title": None, "task_notes": None, "task_priority": "none",
         "continue_without_completing": False}
        for position, step in enumerate(emails, 1)
    ]  # fmt: skip
    now = ctx.clock.now()
    due = due_at or now
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        with ctx.db.transaction() as session:
            first_id = _next_id(session, Contact)
            session.execute(
                insert(Contact),
                [
                    {"id": first_id + i, "email": f"c{start + i}-{tag}@corp.example",
                     "email_key": f"c{start + i}-{tag}@corp.example", "firstname": "Ann",
                     "properties": {}, "blocked": False, "created_at": now, "updated_at": now}
                    for i in range(size)
                ],
            )  # fmt: skip
            first_enrollment = _next_id(session, Enrollment)
            session.execute(
                insert(Enrollment),
                [
                    {"id": first_enrollment + i, "contact_id": first_id + i,
                     "sequence_id": sequence.id, "mailbox_id": boxes[(start + i) % len(boxes)],
                     "enrolled_by_id": user.id, "timezone": "UTC", "state": "active",
                     "start_step": 1, "steps_snapshot": snapshot, "settings_snapshot": {},
                     "token_values": {}, "bulk": False, "needs_attention": False,
                     "enrolled_at": now}
                    for i in range(size)
                ],
            )  # fmt: skip
            session.execute(
                insert(StepRun),
                [
                    {"enrollment_id": first_enrollment + i,
                     "mailbox_id": boxes[(start + i) % len(boxes)], "step_position": 1,
                     "step_type": "email", "bulk_first": False, "send_ready": False,
                     "status": "pending", "due_at": due + timedelta(microseconds=start + i),
                     "attempts": 0, "created_at": now}
                    for i in range(size)
                ],
            )  # fmt: skip
    _resync_sequences(ctx)
    return boxes


def _next_id(session, model) -> int:
    return (session.scalar(select(func.max(model.id))) or 0) + 1


def _resync_sequences(ctx: Context) -> None:
    """Explicit ids leave PostgreSQL's sequences behind; move them past the rows."""
    if ctx.db.dialect != "postgresql":
        return
    with ctx.db.transaction() as session:
        for table in ("contacts", "enrollments"):
            session.execute(
                text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                     f"(SELECT max(id) FROM {table}))")
            )  # fmt: skip
