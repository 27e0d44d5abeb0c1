"""A team's day for the reports' tests: two reps' enrollments run by the engine on the
injected clock, a reply, a meeting, calls completed with outcomes, an overdue task.

What it made is returned as the figures the reports must show (`expected`), counted
from the scene's own actions, so a test compares the report with what really happened.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update

from cadenza.domain.enums import EventKind
from cadenza.engine.worker import Worker, WorkerOptions
from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.accounts.users import create_user
from cadenza.services.enrollment import tasks
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.services.signals.effects import Signal, record_signal
from cadenza.store.models import Message, Task

CALL_STEPS = [
    {"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"},
    {"type": "task", "task_type": "call", "task_title": "Call {{ contact.firstname }}",
     "continue_without_completing": True},
]  # fmt: skip


@dataclass
class TeamDay:
    sequence_id: int
    rep_id: int  # the world's rep: 3 enrollments
    other_id: int  # a second member: 1 enrollment
    other_email: str
    enrollment_ids: list[int]


def run_team_day(ctx, world, *, other=None) -> TeamDay:
    """Rep enrolls three contacts, another member one, in a sequence of an email then a
    call; the engine sends and creates the calls; contact 0 replies, contact 1 books a
    meeting; the rep logs two calls (connected, no_answer); the other rep's call stays
    open and falls overdue."""
    sequence = world.make_sequence(steps=CALL_STEPS, name="Calls")
    if other is None:
        other = create_user(ctx, "olive@example.com", firstname="Olive")
        create_mailbox(ctx, other.id, "olive@example.com")
    contacts = world.contacts(4, prefix="team")
    ids = _enroll(ctx, sequence.id, world.user.id, contacts[:3])
    ids += _enroll(ctx, sequence.id, other.id, contacts[3:])
    worker = Worker(ctx, WorkerOptions(batch_size=100), worker_id="reports")
    try:
        worker.run_until(ctx.clock.now() + timedelta(hours=1))
    finally:
        worker.close()
    tasks.create_due_tasks(ctx)
    with ctx.db.read() as session:
        messages = {
            m.enrollment_id: m.id
            for m in session.query(Message).filter(Message.enrollment_id.in_(ids))
        }
    record_signal(ctx, Signal(EventKind.REPLY, "team-reply", message_pk=messages[ids[0]]))
    record_signal(
        ctx, Signal(EventKind.MEETING_BOOKED, "team-meeting", message_pk=messages[ids[1]])
    )
    ctx.clock.advance(timedelta(hours=2))
    # Outcomes as the queue's call logging writes them (issue 17 §2 adds the form).
    for enrollment_id, outcome in ((ids[0], "connected"), (ids[2], "no_answer")):
        with ctx.db.read() as session:
            task_id = session.query(Task.id).filter(Task.enrollment_id == enrollment_id).scalar()
        if task_id is None:
            continue  # a reply ended the enrollment before its call was created
        tasks.complete_task(ctx, task_id)
        with ctx.db.transaction() as session:
            session.execute(
                update(Task)
                .where(Task.id == task_id)
                .values(outcome=outcome, duration_seconds=90, logged_at=ctx.clock.now())
            )
    return TeamDay(sequence.id, world.user.id, other.id, other.email, ids)


def _enroll(ctx, sequence_id, user_id, contacts) -> list[int]:
    results = enroll(
        ctx,
        EnrollRequest(
            sequence_id=sequence_id,
            user_id=user_id,
            contacts=[ContactRequest(c.id) for c in contacts],
        ),
    )
    assert all(r.ok for r in results), results
    return [r.enrollment_id for r in results]


class Rep:
    """What run_team_day needs of a world, over an existing user (the demo's rep in the
    browser test): their sequences and fresh contacts of their own naming."""

    def __init__(self, ctx, user) -> None:
        self.ctx, self.user = ctx, user

    def make_sequence(self, steps, name):
        from cadenza.services.sequences.catalog import create_sequence

        return create_sequence(self.ctx, self.user.id, name, steps=steps)

    def contacts(self, count: int, prefix: str):
        from cadenza.services.crm.contacts import create_contact

        tag = uuid.uuid4().hex[:6]
        return [
            create_contact(
                self.ctx, {"email": f"{prefix}{i}-{tag}@corp.example", "firstname": "Ann"}
            )
            for i in range(count)
        ]
