"""The claim's row locks on PostgreSQL (services/delivery/claims.py): what another
transaction holds is skipped, never waited for, and the claim locks only its own rows.

Two workers claiming at once must not queue behind each other (a mailbox, a task's
reminder or a digest being claimed by one is simply passed over by the other: SKIP
LOCKED for the reminders' and digests' rows, a try of the mailbox's advisory lock for
the mailbox: claims._claimable), and a claim must not wait for, nor block, a user
editing their profile or an enrollment being paused: it locks the step runs, tasks
and digests it takes, not the users or enrollments it reads with them (FOR UPDATE OF;
an UPDATE of a user or an enrollment takes FOR NO KEY UPDATE, which the claim's new
rows referring to them do not conflict with, where a FOR UPDATE of theirs would). A
third connection holds the lock; the claim runs in its own thread and is failed the
moment pg_stat_activity shows it waiting (tests/support/pg_locks.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text, update

from cadenza.domain.enums import StepRunStatus, TaskStatus
from cadenza.services.delivery import claims
from cadenza.services.enrollment import reminders
from cadenza.store.models import Enrollment, Mailbox, StepRun, Task, TaskDigest, User
from tests.conftest import World, enroll_ids
from tests.support.pg_locks import Contender, queue_behind_lock, without_waiting
from tests.support.rows import claim, rows

MONDAY_8AM_NY = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)  # the world's rep is in New York


def held(ctx, model, pk, *, written):
    """A connection holding `model` row `pk` in an open transaction: as another claim
    does (FOR UPDATE), or `written`, as any UPDATE of the row's other columns does (FOR
    NO KEY UPDATE, which lets the claim's new rows still refer to it)."""
    holder = ctx.db.engine.connect()
    holder.begin()
    holder.execute(select(model.id).where(model.id == pk).with_for_update(key_share=written))
    return holder


def claiming(ctx, mailbox_id):
    """A connection in an open transaction that holds `mailbox_id` as a claim does: its
    advisory lock (claims._claimable), not its row, which hand-overs lock meanwhile."""
    holder = ctx.db.engine.connect()
    holder.begin()
    lock = text("SELECT pg_advisory_xact_lock(:kind, :id)")
    holder.execute(lock, {"kind": claims.CLAIM_LOCK_CLASS, "id": mailbox_id})
    return holder


def claim_while(ctx, model, pk, mailbox_id, *, written=False):
    """The claim of `mailbox_id` while another transaction holds row `pk` of `model`
    (of a mailbox: holds it as another claim does)."""
    holder = claiming(ctx, pk) if model is Mailbox else held(ctx, model, pk, written=written)
    try:
        return without_waiting(ctx, holder, lambda: claim(ctx, "w2", mailbox_id), "the claim")
    finally:
        holder.rollback()
        holder.close()


def a_due_email(ctx):
    world = World(ctx)
    [eid] = enroll_ids(world, [world.contact()])
    return world, eid


def a_due_reminder(ctx, world, eid):
    """An open task of the enrollment whose reminder is due now."""
    with ctx.db.transaction() as session:
        task = Task(
            owner_id=world.user.id,
            enrollment_id=eid,
            type="call",
            title="Call Ann",
            due_at=ctx.clock.now() + timedelta(minutes=30),
            remind_at=ctx.clock.now(),
            status=TaskStatus.OPEN,
            created_at=ctx.clock.now(),
        )
        session.add(task)
        session.flush()
        return task.id


def a_due_digest(ctx, world):
    reminders.update_preferences(ctx, world.user.id, {"timing": "none", "digest": True})
    with ctx.db.transaction() as session:
        session.add(
            Task(
                owner_id=world.user.id,
                type="call",
                title="Call Bo",
                due_at=MONDAY_8AM_NY,
                status=TaskStatus.OPEN,
                created_at=ctx.clock.now(),
            )
        )
    ctx.clock.set(MONDAY_8AM_NY)
    assert reminders.make_due_digests(ctx) == 1
    [digest] = rows(ctx, TaskDigest)
    return digest.id


def test_a_mailbox_another_worker_is_claiming_is_passed_over_then_claimed(pg_ctx):
    world, _ = a_due_email(pg_ctx)
    skipped = claim_while(pg_ctx, Mailbox, world.mailbox.id, world.mailbox.id)
    assert skipped == []
    [email] = claim(pg_ctx, "w2", world.mailbox.id)  # once the other one let go
    assert email.mailbox_id == world.mailbox.id


def test_the_claim_does_not_wait_for_an_enrollment_being_written(pg_ctx):
    world, eid = a_due_email(pg_ctx)
    [email] = claim_while(pg_ctx, Enrollment, eid, world.mailbox.id, written=True)
    assert email.enrollment_id == eid


def test_a_reminder_another_worker_is_claiming_is_passed_over(pg_ctx):
    world, eid = a_due_email(pg_ctx)
    task_id = a_due_reminder(pg_ctx, world, eid)
    claimed = claim_while(pg_ctx, Task, task_id, world.mailbox.id)
    assert [c.task_id for c in claimed] == [None]  # the email only
    [reminder] = claim(pg_ctx, "w2", world.mailbox.id)
    assert reminder.task_id == task_id


def test_a_reminder_is_claimed_while_its_owner_and_enrollment_are_being_written(pg_ctx):
    world, eid = a_due_email(pg_ctx)
    task_id = a_due_reminder(pg_ctx, world, eid)
    claimed = claim_while(pg_ctx, User, world.user.id, world.mailbox.id, written=True)
    assert [c.task_id for c in claimed] == [None, task_id]
    another = a_due_reminder(pg_ctx, world, eid)  # the email and the first are claimed
    claimed = claim_while(pg_ctx, Enrollment, eid, world.mailbox.id, written=True)
    assert [c.task_id for c in claimed] == [another]


def test_a_digest_another_worker_is_claiming_is_passed_over(pg_ctx):
    world = World(pg_ctx)
    digest_id = a_due_digest(pg_ctx, world)
    assert claim_while(pg_ctx, TaskDigest, digest_id, world.mailbox.id) == []
    [digest] = claim(pg_ctx, "w2", world.mailbox.id)
    assert digest.digest_id == digest_id


def test_a_digest_is_claimed_while_its_user_is_being_written(pg_ctx):
    world = World(pg_ctx)
    digest_id = a_due_digest(pg_ctx, world)
    claimed = claim_while(pg_ctx, User, world.user.id, world.mailbox.id, written=True)
    assert [c.digest_id for c in claimed] == [digest_id]


def test_a_run_stopped_while_the_claim_waited_for_its_lock_is_left_alone(pg_ctx):
    """The claim finds the run due, then waits for its row: an unenroll is cancelling it.
    Once that commits, the claim reads the row again and leaves it — it must not mark a
    cancelled run as sending. (Its read takes every mailbox's runs in one statement, the
    runs' ids picked in a subquery: the locking query repeats the due conditions, which
    PostgreSQL checks again on the row it waited for; the subquery's answer it does not.)"""
    world, eid = a_due_email(pg_ctx)
    with pg_ctx.db.read() as session:
        [run_id] = session.scalars(select(StepRun.id).where(StepRun.enrollment_id == eid))
    holder = pg_ctx.db.engine.connect()
    holder.begin()
    try:
        holder.execute(
            update(StepRun).where(StepRun.id == run_id).values(status=StepRunStatus.CANCELLED)
        )
        contender = Contender(lambda: claim(pg_ctx, "w2", world.mailbox.id))
        queue_behind_lock(pg_ctx, contender, 1, "the claim")
        holder.commit()
    finally:
        holder.close()
    assert contender.outcome() == []
    [run] = [r for r in rows(pg_ctx, StepRun) if r.id == run_id]
    assert run.status == StepRunStatus.CANCELLED and run.locked_by is None
