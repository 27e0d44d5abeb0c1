"""Taking back what dead or stopping workers held, and when work falls due
(services/delivery/recovery.py), driven directly through the service.

`release_unsent` and `next_due_at` are otherwise reached only by the worker process
(its shutdown, its exit-when-idle check); here each is called on rows the test made, so
that mutation testing sees every condition of theirs decide something.
"""

from __future__ import annotations

from datetime import timedelta

from cadenza.services.delivery import handover as delivery
from cadenza.services.delivery import recovery
from cadenza.services.delivery.handover import HandOver
from cadenza.services.enrollment.tasks import create_due_tasks
from cadenza.store.models import Enrollment, Mailbox, Message, StepRun, Task
from tests.conftest import enroll_ids
from tests.support.rows import LEASE, claim, one, rows, write

TASK_STEP = [{"type": "task", "task_title": "Call"}]


def due_reminder(ctx, world, email="t@corp.example"):
    """A task whose reminder is due now, from the world's mailbox: the task row."""
    calls = world.make_sequence(
        steps=TASK_STEP, settings={"task_reminders": True}, name=f"Calls {email}"
    )
    enroll_ids(world, [world.contact(email)], calls)
    assert create_due_tasks(ctx) == 1
    [task] = rows(ctx, Task, Task.title == "Call", Task.contact_id.in_(_contact_ids(ctx, email)))
    return task


def _contact_ids(ctx, email):
    from cadenza.store.models import Contact

    return [c.id for c in rows(ctx, Contact, Contact.email == email)]


# --- recover_expired ----------------------------------------------------------------------


def test_a_claim_is_taken_back_only_once_its_lease_has_run_out(ctx, world):
    enroll_ids(world, [world.contact()])
    [held] = claim(ctx, "dead", world.mailbox.id, horizon=timedelta(0))
    locked_until = one(ctx, StepRun, held.run_id).locked_until
    assert locked_until == ctx.clock.now() + LEASE
    ctx.clock.advance(LEASE)  # exactly at the end of the lease: still the worker's
    assert recovery.recover_expired(ctx) == 0
    assert one(ctx, StepRun, held.run_id).status == "sending"
    ctx.clock.advance(timedelta(microseconds=1))
    assert recovery.recover_expired(ctx) == 1
    run = one(ctx, StepRun, held.run_id)
    assert (run.status, run.locked_by, run.locked_until) == ("pending", None, None)
    assert one(ctx, Message, held.message_pk).status == "prepared"  # sent later, same message
    assert one(ctx, Enrollment, held.enrollment_id).needs_attention is False
    assert recovery.recover_expired(ctx) == 0  # nothing left to take back


def test_a_claim_that_was_being_handed_over_is_taken_back_as_unknown(ctx, world):
    [eid] = enroll_ids(world, [world.contact()])
    [held] = claim(ctx, "dead", world.mailbox.id, horizon=timedelta(0))
    assert delivery.hand_over(ctx, held, "dead") is HandOver.GO
    ctx.clock.advance(LEASE * 2)
    assert recovery.recover_expired(ctx) == 1
    run = one(ctx, StepRun, held.run_id)
    assert (run.status, run.locked_by, run.locked_until) == ("unknown", None, None)
    assert run.last_error == "the worker stopped while handing it over"
    assert one(ctx, Message, held.message_pk).status == "unknown"
    assert one(ctx, Enrollment, eid).needs_attention is True
    assert recovery.recover_expired(ctx) == 0  # never taken back twice


def test_only_claims_in_sending_are_taken_back_and_no_more_than_the_limit(ctx, world):
    enroll_ids(world, world.contacts(3))
    held = claim(ctx, "dead", world.mailbox.id, horizon=timedelta(minutes=5))
    assert len(held) == 3
    write(ctx, StepRun, held[2].run_id, status="paused")  # expired lease, but not sending
    ctx.clock.advance(timedelta(hours=1))
    assert recovery.recover_expired(ctx, limit=1) == 1
    statuses = [one(ctx, StepRun, c.run_id).status for c in held]
    assert sorted(statuses) == ["paused", "pending", "sending"]
    assert recovery.recover_expired(ctx, limit=1) == 1
    assert recovery.recover_expired(ctx, limit=1) == 0
    assert [one(ctx, StepRun, c.run_id).status for c in held] == ["pending", "pending", "paused"]


# --- release_unsent -----------------------------------------------------------------------


def test_release_unsent_gives_back_this_workers_unsent_claims_only(ctx, world):
    enroll_ids(world, world.contacts(3))
    mine = claim(ctx, "stopping", world.mailbox.id, horizon=timedelta(minutes=5))
    assert len(mine) == 3
    recorded, unsent, taken = mine
    write(ctx, StepRun, recorded.run_id, status="sent")  # recorded meanwhile
    write(ctx, StepRun, taken.run_id, locked_by="other")  # another worker's now
    recovery.release_unsent(ctx, mine, "stopping")
    free = one(ctx, StepRun, unsent.run_id)
    assert (free.status, free.locked_by, free.locked_until) == ("pending", None, None)
    assert one(ctx, Message, unsent.message_pk).status == "prepared"  # kept for the next try
    kept = one(ctx, StepRun, taken.run_id)
    assert (kept.status, kept.locked_by) == ("sending", "other")
    assert kept.locked_until is not None
    done = one(ctx, StepRun, recorded.run_id)
    assert (done.status, done.locked_by) == ("sent", "stopping")  # only "sending" goes back


def test_release_unsent_gives_back_only_the_claims_it_is_handed(ctx, world):
    enroll_ids(world, world.contacts(2))
    kept, released = claim(ctx, "w", world.mailbox.id, horizon=timedelta(minutes=5))
    recovery.release_unsent(ctx, [released], "w")
    assert one(ctx, StepRun, released.run_id).status == "pending"
    run = one(ctx, StepRun, kept.run_id)
    assert (run.status, run.locked_by) == ("sending", "w")  # still on its way


def test_release_unsent_with_step_claims_only(ctx, world):
    enroll_ids(world, [world.contact()])
    [held] = claim(ctx, "stopping", world.mailbox.id, horizon=timedelta(0))
    recovery.release_unsent(ctx, [held], "stopping")
    run = one(ctx, StepRun, held.run_id)
    assert (run.status, run.locked_by, run.locked_until) == ("pending", None, None)


def test_release_unsent_makes_an_unsent_reminder_due_again(ctx, world):
    task = due_reminder(ctx, world)
    [reminder] = claim(ctx, "stopping", world.mailbox.id)
    assert reminder.is_reminder and reminder.task_id == task.id
    assert one(ctx, Task, task.id).reminded_at == ctx.clock.now()
    recovery.release_unsent(ctx, [reminder], "stopping")
    assert one(ctx, Message, reminder.message_pk) is None  # its unsent message dropped
    assert one(ctx, Task, task.id).reminded_at is None  # due again
    [again] = claim(ctx, "next", world.mailbox.id)
    assert again.task_id == task.id  # a new message (SQLite may reuse the dropped one's id)
    assert [m.status for m in rows(ctx, Message)] == ["prepared"]


def test_release_unsent_keeps_a_reminder_already_handed_over(ctx, world):
    other = due_reminder(ctx, world, "u@corp.example")
    task = due_reminder(ctx, world)
    first, second = claim(ctx, "stopping", world.mailbox.id)
    assert {first.task_id, second.task_id} == {other.id, task.id}
    assert delivery.hand_over(ctx, first, "stopping") is HandOver.GO
    recovery.release_unsent(ctx, [first, second], "stopping")
    assert one(ctx, Message, first.message_pk).status == "handing"  # at most once: kept
    assert one(ctx, Task, first.task_id).reminded_at is not None
    assert one(ctx, Message, second.message_pk) is None
    assert one(ctx, Task, second.task_id).reminded_at is None


def test_release_unsent_of_nothing_changes_nothing(ctx, world):
    enroll_ids(world, [world.contact()])
    [held] = claim(ctx, "w", world.mailbox.id, horizon=timedelta(0))
    recovery.release_unsent(ctx, [], "w")
    assert one(ctx, StepRun, held.run_id).status == "sending"


# --- next_due_at ----------------------------------------------------------------------------


def test_next_due_at_is_the_earliest_pending_run_even_when_past(ctx, world):
    assert recovery.next_due_at(ctx) is None
    [first, second] = enroll_ids(world, world.contacts(2))
    start = ctx.clock.now()
    write(ctx, StepRun, _run_of(ctx, first).id, due_at=start - timedelta(hours=1))
    write(ctx, StepRun, _run_of(ctx, second).id, due_at=start + timedelta(hours=2))
    assert recovery.next_due_at(ctx) == start - timedelta(hours=1)
    write(ctx, StepRun, _run_of(ctx, first).id, status="paused")  # not pending: not counted
    assert recovery.next_due_at(ctx) == start + timedelta(hours=2)


def _run_of(ctx, enrollment_id) -> StepRun:
    [run] = rows(ctx, StepRun, StepRun.enrollment_id == enrollment_id)
    return run


# --- next_wakeup ----------------------------------------------------------------------------


def test_next_wakeup_is_the_next_future_due_step(ctx, world):
    assert recovery.next_wakeup(ctx) is None
    [first, second, third] = enroll_ids(world, world.contacts(3))
    now = ctx.clock.now()
    write(ctx, StepRun, _run_of(ctx, first).id, due_at=now + timedelta(hours=1))
    write(ctx, StepRun, _run_of(ctx, second).id, due_at=now + timedelta(hours=3))
    write(ctx, StepRun, _run_of(ctx, third).id, due_at=now)  # due now, held by nothing
    assert recovery.next_wakeup(ctx) == now + timedelta(hours=1)
    write(ctx, StepRun, _run_of(ctx, first).id, status="paused")
    assert recovery.next_wakeup(ctx) == now + timedelta(hours=3)
    write(ctx, StepRun, _run_of(ctx, second).id, due_at=now)  # due now: not a future moment
    assert recovery.next_wakeup(ctx) is None


def test_next_wakeup_counts_a_future_reminder_of_an_open_unreminded_task(ctx, world):
    task = due_reminder(ctx, world)
    now = ctx.clock.now()
    write(ctx, Task, task.id, remind_at=now + timedelta(hours=2))
    assert recovery.next_wakeup(ctx) == now + timedelta(hours=2)
    write(ctx, Task, task.id, reminded_at=now)  # already reminded
    assert recovery.next_wakeup(ctx) is None
    write(ctx, Task, task.id, reminded_at=None, status="completed")  # no longer open
    assert recovery.next_wakeup(ctx) is None


def test_next_wakeup_skips_reminders_due_now_for_the_next_future_one(ctx, world):
    now = ctx.clock.now()
    due_reminder(ctx, world, "a@corp.example")  # due this very instant: the tick sends it
    later = due_reminder(ctx, world, "b@corp.example")
    write(ctx, Task, later.id, remind_at=now + timedelta(hours=2))
    assert recovery.next_wakeup(ctx) == now + timedelta(hours=2)


def test_next_wakeup_counts_only_mailboxes_held_with_work_due(ctx, world):
    """A mailbox's next slot counts only while a pending step or an unsent reminder due
    now waits for it."""
    now = ctx.clock.now()
    write(ctx, Mailbox, world.mailbox.id, next_send_at=now + timedelta(minutes=30))
    task = due_reminder(ctx, world)
    write(ctx, Task, task.id, remind_at=now + timedelta(hours=2))  # not yet due
    assert recovery.next_wakeup(ctx) == now + timedelta(hours=2)
    write(ctx, Task, task.id, remind_at=now, reminded_at=now)  # due, but already sent
    assert recovery.next_wakeup(ctx) is None
    [eid] = enroll_ids(world, [world.contact("a@corp.example")])
    write(ctx, StepRun, _run_of(ctx, eid).id, status="paused", wait_reason="rate_limit")
    assert recovery.next_wakeup(ctx) is None  # held once, but no longer pending
    write(ctx, StepRun, _run_of(ctx, eid).id, status="pending")
    assert recovery.next_wakeup(ctx) == now + timedelta(minutes=30)


def test_next_wakeup_of_a_mailbox_held_by_its_throttle_is_its_next_slot(ctx, world):
    [eid] = enroll_ids(world, [world.contact()])
    now = ctx.clock.now()
    run = _run_of(ctx, eid)
    write(ctx, Mailbox, world.mailbox.id, next_send_at=now + timedelta(seconds=40))
    assert recovery.next_wakeup(ctx) is None  # due now, not held: the tick sends it
    write(ctx, StepRun, run.id, wait_reason="rate_limit")
    assert recovery.next_wakeup(ctx) == now + timedelta(seconds=40)
    write(ctx, Mailbox, world.mailbox.id, next_send_at=now)  # a slot now is no future moment
    assert recovery.next_wakeup(ctx) is None
    write(ctx, StepRun, run.id, due_at=now + timedelta(minutes=5))  # not due yet: its due time
    write(ctx, Mailbox, world.mailbox.id, next_send_at=now + timedelta(seconds=40))
    assert recovery.next_wakeup(ctx) == now + timedelta(minutes=5)


def test_next_wakeup_of_a_mailbox_out_of_daily_room_is_when_its_oldest_send_ages_out(ctx, world):
    [eid, other] = enroll_ids(world, world.contacts(2))
    now = ctx.clock.now()
    oldest = now - timedelta(hours=23)
    _sent_message(ctx, world, now - timedelta(hours=24))  # exactly 24 h ago: out of the window
    _sent_message(ctx, world, oldest)
    _sent_message(ctx, world, now - timedelta(hours=1))
    write(ctx, StepRun, _run_of(ctx, other).id, due_at=now + timedelta(hours=5))
    write(ctx, StepRun, _run_of(ctx, eid).id, wait_reason="daily_limit")
    assert recovery.next_wakeup(ctx) == oldest + timedelta(hours=24, seconds=1)


def test_next_wakeup_of_a_mailbox_with_a_held_reminder(ctx, world):
    due_reminder(ctx, world)
    now = ctx.clock.now()
    sent_at = now - timedelta(hours=2)
    _sent_message(ctx, world, sent_at)
    write(ctx, Mailbox, world.mailbox.id, next_send_at=now + timedelta(hours=30))
    assert recovery.next_wakeup(ctx) == sent_at + timedelta(hours=24, seconds=1)


def test_next_wakeup_ignores_other_mailboxes_sends(ctx, world):
    from cadenza.services.accounts.mailboxes import create_mailbox

    [eid] = enroll_ids(world, [world.contact()])
    other = create_mailbox(ctx, world.user.id, "rep2@example.com")
    now = ctx.clock.now()
    _sent_message(ctx, world, now - timedelta(hours=20), mailbox_id=other.id)
    _sent_message(ctx, world, now - timedelta(hours=3))
    write(ctx, StepRun, _run_of(ctx, eid).id, wait_reason="daily_limit")
    assert recovery.next_wakeup(ctx) == now - timedelta(hours=3) + timedelta(hours=24, seconds=1)


def _sent_message(ctx, world, sent_at, mailbox_id=None):
    counter = len(rows(ctx, Message))
    with ctx.db.transaction() as session:
        session.add(
            Message(
                mailbox_id=mailbox_id or world.mailbox.id,
                message_id=f"<sent-{counter}@example.com>",
                from_email="rep@example.com",
                to_email=f"sent{counter}@corp.example",
                subject="Earlier",
                body_html="<p>Earlier</p>",
                body_text="Earlier",
                status="sent",
                sent_at=sent_at,
                created_at=sent_at,
            )
        )


def test_next_wakeup_of_a_mailbox_holding_a_due_digest_is_its_next_slot(ctx, world):
    from cadenza.domain.enums import DigestStatus
    from cadenza.store.models import TaskDigest

    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        digest = TaskDigest(user_id=world.user.id, local_date=now.date(),
                            mailbox_id=world.mailbox.id, status=DigestStatus.PENDING,
                            due_at=now, created_at=now)  # fmt: skip
        session.add(digest)
        session.flush()
        digest_id = digest.id
    write(ctx, Mailbox, world.mailbox.id, next_send_at=now + timedelta(seconds=40))
    assert recovery.next_wakeup(ctx) == now + timedelta(seconds=40)  # due at this instant
    write(ctx, TaskDigest, digest_id, due_at=now + timedelta(days=1))
    assert recovery.next_wakeup(ctx) is None  # due tomorrow: nothing waits for the slot yet
    write(ctx, TaskDigest, digest_id, due_at=now)
    write(ctx, TaskDigest, digest_id, status=DigestStatus.CLAIMED)
    assert recovery.next_wakeup(ctx) is None  # claimed: nothing waits for the slot
