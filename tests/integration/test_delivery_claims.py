"""Claiming due emails (services/delivery/claims.py), driven directly through the service:
which mailboxes have work and in what order, what one claim takes and leaves, the lease
it writes, the reminders it claims after the steps, and the lost reminders it settles.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from cadenza.domain.delivery_outcome import DeliveryOutcome, DeliveryResult
from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.delivery import claims, recovery
from cadenza.services.delivery import handover as delivery
from cadenza.services.delivery.handover import HandOver
from cadenza.services.enrollment.tasks import create_due_tasks
from cadenza.store.models import Enrollment, Mailbox, Message, StepRun, Task
from tests.conftest import MISSING_ID, enroll_ids
from tests.support.rows import LEASE, ONE_EMAIL, claim, one, rows, write
from tests.support.seed import seed_due_emails

TASK_STEP = [{"type": "task", "task_title": "Call"}]


def run_of(ctx, enrollment_id) -> StepRun:
    [run] = rows(ctx, StepRun, StepRun.enrollment_id == enrollment_id)
    return run


def due_reminder(ctx, world, email="t@corp.example", mailbox=None):
    """A task whose reminder is due now (its enrollment sends from `mailbox`): the task."""
    calls = world.make_sequence(
        steps=TASK_STEP, settings={"task_reminders": True}, name=f"Calls {email}"
    )
    mailbox_id = (mailbox or world.mailbox).id
    [eid] = enroll_ids(world, [world.contact(email)], calls, mailbox_id=mailbox_id)
    assert create_due_tasks(ctx) == 1
    [task] = rows(ctx, Task, Task.enrollment_id == eid)
    return task


def second_mailbox(ctx, world, email="rep2@example.com"):
    return create_mailbox(ctx, world.user.id, email, from_name="Riley")


# --- mailboxes_with_due_email -------------------------------------------------------------


def test_mailboxes_with_due_email_most_overdue_first_due_ones_only(ctx, world):
    [a] = enroll_ids(world, [world.contact("a@corp.example")])
    other = second_mailbox(ctx, world)
    third = second_mailbox(ctx, world, "rep3@example.com")
    [b] = enroll_ids(world, [world.contact("b@corp.example")], mailbox_id=other.id)
    [c] = enroll_ids(world, [world.contact("c@corp.example")], mailbox_id=third.id)
    now = ctx.clock.now()
    write(ctx, StepRun, run_of(ctx, a).id, due_at=now)  # due this very instant
    write(ctx, StepRun, run_of(ctx, b).id, due_at=now - timedelta(hours=2))
    write(ctx, StepRun, run_of(ctx, c).id, due_at=now - timedelta(hours=1))
    assert claims.mailboxes_with_due_email(ctx) == [other.id, third.id, world.mailbox.id]
    assert claims.mailboxes_with_due_email(ctx, limit=2) == [other.id, third.id]
    write(ctx, StepRun, run_of(ctx, a).id, due_at=now + timedelta(microseconds=1))
    write(ctx, StepRun, run_of(ctx, c).id, status="paused")
    assert claims.mailboxes_with_due_email(ctx) == [other.id]


def test_mailboxes_with_due_email_leave_out_tasks_but_not_ready_manual_emails(ctx, world):
    calls = world.make_sequence(steps=TASK_STEP, name="Calls")
    [eid] = enroll_ids(world, [world.contact()], calls)
    assert claims.mailboxes_with_due_email(ctx) == []  # a task step is not an email
    write(ctx, StepRun, run_of(ctx, eid).id, send_ready=True)  # a manual email ready to go
    assert claims.mailboxes_with_due_email(ctx) == [world.mailbox.id]


def test_mailboxes_with_due_reminders_take_the_earlier_of_step_and_reminder(ctx, world):
    other = second_mailbox(ctx, world)
    now = ctx.clock.now()
    task = due_reminder(ctx, world, mailbox=other)  # reminder due now, from `other`
    [eid] = enroll_ids(world, [world.contact("a@corp.example")], mailbox_id=world.mailbox.id)
    write(ctx, StepRun, run_of(ctx, eid).id, due_at=now - timedelta(minutes=30))
    assert claims.mailboxes_with_due_email(ctx) == [world.mailbox.id, other.id]
    write(ctx, Task, task.id, remind_at=now - timedelta(hours=1))
    assert claims.mailboxes_with_due_email(ctx) == [other.id, world.mailbox.id]
    assert claims.mailboxes_with_due_email(ctx, limit=1) == [other.id]
    # the same mailbox with a step due later than its reminder is ordered by the reminder
    [late] = enroll_ids(world, [world.contact("l@corp.example")], mailbox_id=other.id)
    write(ctx, StepRun, run_of(ctx, late).id, due_at=now)
    assert claims.mailboxes_with_due_email(ctx) == [other.id, world.mailbox.id]
    # and by the step when the step is the earlier of the two
    write(ctx, StepRun, run_of(ctx, late).id, due_at=now - timedelta(hours=3))
    write(ctx, StepRun, run_of(ctx, eid).id, due_at=now - timedelta(hours=2))
    assert claims.mailboxes_with_due_email(ctx) == [other.id, world.mailbox.id]
    write(ctx, StepRun, run_of(ctx, late).id, status="paused")
    assert claims.mailboxes_with_due_email(ctx) == [world.mailbox.id, other.id]


def test_mailboxes_with_due_reminders_only_are_each_listed(ctx, world):
    other = second_mailbox(ctx, world)
    now = ctx.clock.now()
    first = due_reminder(ctx, world, "a@corp.example", mailbox=other)
    due_reminder(ctx, world, "b@corp.example")
    write(ctx, Task, first.id, remind_at=now - timedelta(minutes=5))
    assert claims.mailboxes_with_due_email(ctx) == [other.id, world.mailbox.id]


def test_a_reminder_is_due_only_while_open_unreminded_and_its_time_has_come(ctx, world):
    task = due_reminder(ctx, world)
    now = ctx.clock.now()
    assert claims.mailboxes_with_due_email(ctx) == [world.mailbox.id]
    write(ctx, Task, task.id, remind_at=now + timedelta(seconds=1))
    assert claims.mailboxes_with_due_email(ctx) == []
    write(ctx, Task, task.id, remind_at=now, reminded_at=now)
    assert claims.mailboxes_with_due_email(ctx) == []
    write(ctx, Task, task.id, reminded_at=None, status="completed")
    assert claims.mailboxes_with_due_email(ctx) == []
    assert claim(ctx, "w", world.mailbox.id) == []


# --- what one claim takes -----------------------------------------------------------------


def test_a_claim_says_everything_about_the_email_and_leases_its_run(ctx, world):
    contact = world.contact("ann@corp.example", firstname="Ann")
    [eid] = enroll_ids(world, [contact])
    now = ctx.clock.now()
    [held] = claim(ctx, "w1", world.mailbox.id)
    [message] = rows(ctx, Message)
    run = run_of(ctx, eid)
    assert held.run_id == run.id and not held.is_reminder
    assert (held.enrollment_id, held.message_pk, held.mailbox_id) == (eid, message.id,
                                                                      world.mailbox.id)  # fmt: skip
    assert (held.slot, held.sender, held.recipient) == (now, "rep@example.com", contact.email)
    assert held.raw == message.raw.encode("utf-8") and b"Subject: Hi Ann" in held.raw
    assert held.spacing == timedelta(seconds=6)  # 10 a minute
    assert held.last_step is False  # two more steps follow
    assert (held.contact_id, held.sequence_id, held.step_position) == (
        contact.id,
        world.sequence.id,
        1,
    )
    assert held.task_id is None
    assert (message.status, message.step_run_id, message.enrollment_id) == ("prepared", run.id, eid)
    assert (run.status, run.locked_by, run.locked_until, run.wait_reason) == (
        "sending",
        "w1",
        now + LEASE,
        None,
    )


def test_the_lease_runs_from_the_send_slot_and_the_last_step_says_so(ctx, world):
    one_step = world.make_sequence(steps=ONE_EMAIL, name="One")
    for c in world.contacts(2):
        enroll_ids(world, [c], one_step)  # one by one: 10 a minute, one every 6 seconds
    write(ctx, StepRun, rows(ctx, StepRun)[0].id, wait_reason="rate_limit")  # cleared by a claim
    now = ctx.clock.now()
    first, second = claim(ctx, "w1", world.mailbox.id)
    assert (first.slot, second.slot) == (now, now + timedelta(seconds=6))
    assert first.last_step is True and second.last_step is True
    runs = {r.id: r for r in rows(ctx, StepRun)}
    assert runs[first.run_id].locked_until == now + LEASE
    assert runs[second.run_id].locked_until == now + timedelta(seconds=6) + LEASE
    assert [r.wait_reason for r in runs.values()] == [None, None]
    assert one(ctx, Mailbox, world.mailbox.id).next_send_at == now + timedelta(seconds=12)


def test_a_claim_takes_the_batch_in_due_order(ctx, world):
    contacts = world.contacts(3)
    ids = [enroll_ids(world, [c])[0] for c in contacts]
    now = ctx.clock.now()
    for eid, minutes in zip(ids, (1, 3, 2), strict=True):
        write(ctx, StepRun, run_of(ctx, eid).id, due_at=now - timedelta(minutes=minutes))
    taken = claim(ctx, "w1", world.mailbox.id, batch_size=2)
    assert [c.enrollment_id for c in taken] == [ids[1], ids[2]]
    assert run_of(ctx, ids[0]).status == "pending"


def test_a_claim_takes_this_mailboxs_due_emails_only(ctx, world):
    [mine] = enroll_ids(world, [world.contact("a@corp.example")])
    other = second_mailbox(ctx, world)
    [elsewhere] = enroll_ids(world, [world.contact("b@corp.example")], mailbox_id=other.id)
    [later] = enroll_ids(world, [world.contact("c@corp.example")], mailbox_id=world.mailbox.id)
    horizon = timedelta(minutes=5)  # the helper's: room for every run here
    write(ctx, StepRun, run_of(ctx, later).id, due_at=ctx.clock.now() + horizon * 2)
    calls = world.make_sequence(steps=TASK_STEP, name="Calls")
    [task] = enroll_ids(
        world, [world.contact("d@corp.example")], calls, mailbox_id=world.mailbox.id
    )
    # `later` falls due after the horizon: not taken ahead
    assert [c.enrollment_id for c in claim(ctx, "w1", world.mailbox.id, horizon=horizon)] == [mine]
    assert [
        (run_of(ctx, e).status, run_of(ctx, e).locked_by) for e in (elsewhere, later, task)
    ] == [("pending", None)] * 3


def test_an_email_due_within_the_horizon_is_claimed_ahead_with_its_due_time_as_slot(ctx, world):
    """Claimed now, so the worker can open the session and has the message composed, but
    its slot is its due time: it never leaves early. The one behind it is spaced after
    it; one due past the horizon is left pending, told nothing."""
    ids = [enroll_ids(world, [c])[0] for c in world.contacts(3)]
    now = ctx.clock.now()
    due = now + timedelta(seconds=3)
    for eid, at in zip(ids, (due, due, now + timedelta(seconds=20)), strict=True):
        write(ctx, StepRun, run_of(ctx, eid).id, due_at=at)
    soon = now + timedelta(seconds=10)
    assert claims.mailboxes_with_due_email(ctx, slot_before=soon) == []  # due now: none
    assert claims.mailboxes_with_due_email(ctx, slot_before=soon, due_before=soon) == [
        world.mailbox.id
    ]

    taken = claim(ctx, "w1", world.mailbox.id, horizon=timedelta(seconds=10))

    assert [(c.enrollment_id, c.slot) for c in taken] == [
        (ids[0], due),
        (ids[1], due + timedelta(seconds=6)),  # spaced after the first, 10 a minute
    ]
    assert [m.status for m in rows(ctx, Message)] == ["prepared"] * 2  # composed ahead
    assert run_of(ctx, ids[0]).locked_until == due + LEASE
    assert (run_of(ctx, ids[2]).status, run_of(ctx, ids[2]).wait_reason) == ("pending", None)
    assert one(ctx, Mailbox, world.mailbox.id).next_send_at == due + timedelta(seconds=12)


def test_a_step_due_past_the_horizon_holds_back_no_due_reminder(ctx, world):
    """The claim reads no run due past its horizon: read, it would be the mailbox's next
    email, get no slot, and hold back the reminder due now behind it."""
    task = due_reminder(ctx, world)
    [eid] = enroll_ids(world, [world.contact("a@corp.example")])
    write(ctx, StepRun, run_of(ctx, eid).id, due_at=ctx.clock.now() + timedelta(seconds=3))

    taken = claim(ctx, "w1", world.mailbox.id, horizon=timedelta(seconds=2))

    assert [c.task_id for c in taken] == [task.id]
    assert (run_of(ctx, eid).status, run_of(ctx, eid).wait_reason) == ("pending", None)


def test_an_email_due_within_the_horizon_whose_slot_is_not_is_left_waiting(ctx, world):
    """Due in 3 s, but the mailbox's next slot is 30 s away: nothing granted, and the run
    is told why, so the round does not look at the mailbox again before its slot."""
    [eid] = enroll_ids(world, [world.contact()])
    now = ctx.clock.now()
    write(ctx, StepRun, run_of(ctx, eid).id, due_at=now + timedelta(seconds=3))
    write(ctx, Mailbox, world.mailbox.id, next_send_at=now + timedelta(seconds=30))

    assert claim(ctx, "w1", world.mailbox.id, horizon=timedelta(seconds=10)) == []

    assert run_of(ctx, eid).wait_reason == "rate_limit"
    soon = now + timedelta(seconds=10)
    assert claims.mailboxes_with_due_email(ctx, slot_before=soon, due_before=soon) == []


def test_a_claim_of_a_locked_or_idle_mailbox_takes_nothing(ctx, world):
    assert claim(ctx, "w1", world.mailbox.id) == []
    enroll_ids(world, [world.contact()])
    assert claim(ctx, "w1", MISSING_ID) == []  # no such mailbox
    assert len(claim(ctx, "w1", world.mailbox.id)) == 1


def test_a_disconnected_mailbox_marks_its_steps_waiting_and_leaves_reminders(ctx, world):
    task = due_reminder(ctx, world)
    [eid] = enroll_ids(world, [world.contact("a@corp.example")])
    [later] = enroll_ids(world, [world.contact("l@corp.example")])
    write(ctx, StepRun, run_of(ctx, later).id, due_at=ctx.clock.now() + timedelta(hours=1))
    write(ctx, Mailbox, world.mailbox.id, connected=False)
    assert claim(ctx, "w1", world.mailbox.id) == []
    run = run_of(ctx, eid)
    assert (run.status, run.wait_reason, run.locked_by) == ("pending", "mailbox_disconnected", None)
    assert run_of(ctx, later).wait_reason is None  # not due: not marked
    assert one(ctx, Task, task.id).reminded_at is None
    assert rows(ctx, Message) == []


def test_held_steps_wait_for_the_rate_or_for_the_daily_limit(ctx, world):
    write(ctx, Mailbox, world.mailbox.id, per_minute_limit=1)
    ids = [enroll_ids(world, [c])[0] for c in world.contacts(3)]
    taken = claim(ctx, "w1", world.mailbox.id, horizon=timedelta(seconds=30))
    assert [c.enrollment_id for c in taken] == ids[:1]
    assert [run_of(ctx, e).wait_reason for e in ids[1:]] == ["rate_limit", "rate_limit"]
    write(ctx, Mailbox, world.mailbox.id, per_minute_limit=10, daily_limit=2, next_send_at=None)
    taken = claim(ctx, "w1", world.mailbox.id)
    assert [c.enrollment_id for c in taken] == ids[1:2]  # one in flight: room for one more
    assert run_of(ctx, ids[2]).wait_reason == "daily_limit"


def test_the_daily_room_counts_the_last_24_hours_only(ctx, world):
    write(ctx, Mailbox, world.mailbox.id, daily_limit=2)
    now = ctx.clock.now()
    _message(ctx, world, "sent", sent_at=now - timedelta(hours=24))  # just out of the window
    _message(ctx, world, "sent", sent_at=now - timedelta(hours=23, minutes=59))
    _message(ctx, world, "failed", sent_at=None)  # never left: takes no room
    ids = [enroll_ids(world, [c])[0] for c in world.contacts(2)]
    taken = claim(ctx, "w1", world.mailbox.id)
    assert [c.enrollment_id for c in taken] == ids[:1]
    assert run_of(ctx, ids[1]).wait_reason == "daily_limit"


def test_a_follow_up_is_claimed_only_inside_its_send_window(ctx, world):
    sequence = world.make_sequence(
        steps=[
            {"type": "email", "subject": "One", "body": "<p>1</p>"},
            {"type": "email", "delay_days": 1, "subject": "Two", "body": "<p>2</p>"},
        ],
        settings={"follow_up_days": "weekdays", "send_window": {"start": "08:00", "end": "18:00"}},
    )
    first, follow_up = (enroll_ids(world, [c], sequence, timezone="UTC")[0]
                        for c in world.contacts(2))  # fmt: skip
    ctx.clock.set(ctx.clock.now().replace(hour=20))  # Monday 20:00 UTC: outside the window
    write(ctx, StepRun, run_of(ctx, follow_up).id, step_position=2, due_at=ctx.clock.now())
    [taken] = claim(ctx, "w1", world.mailbox.id)  # the first step is not held back
    assert (taken.enrollment_id, taken.step_position) == (first, 1)
    held = run_of(ctx, follow_up)
    assert (held.status, held.wait_reason) == ("pending", "send_window")
    assert held.due_at.isoformat() == "2026-03-03T08:00:00+00:00"


def test_every_day_without_a_window_claims_a_follow_up_at_any_hour(ctx, world):
    sequence = world.make_sequence(
        steps=[
            {"type": "email", "subject": "One", "body": "<p>1</p>"},
            {"type": "email", "delay_days": 1, "subject": "Two", "body": "<p>2</p>"},
        ],
        settings={"follow_up_days": "every_day"},
    )
    [eid] = enroll_ids(world, [world.contact()], sequence, timezone="UTC")
    ctx.clock.set(ctx.clock.now().replace(day=7, hour=23))  # a Saturday night
    write(ctx, StepRun, run_of(ctx, eid).id, step_position=2, due_at=ctx.clock.now())
    [held] = claim(ctx, "w1", world.mailbox.id)
    assert held.step_position == 2 and held.slot == ctx.clock.now()
    assert held.last_step is True


def held_follow_up(ctx, world, settings, at, timezone="UTC"):
    """A follow-up (step 2) due at `at` under `settings`, claimed then: its run after."""
    sequence = world.make_sequence(
        steps=[
            {"type": "email", "subject": "One", "body": "<p>1</p>"},
            {"type": "email", "delay_days": 1, "subject": "Two", "body": "<p>2</p>"},
        ],
        settings=settings,
        name=f"Held {len(rows(ctx, Enrollment))}",
    )
    [eid] = enroll_ids(world, [world.contact()], sequence, timezone=timezone)
    ctx.clock.set(at)
    write(ctx, StepRun, run_of(ctx, eid).id, step_position=2, due_at=at)
    taken = claim(ctx, "w1", world.mailbox.id)
    return taken, run_of(ctx, eid)


def test_a_weekday_follow_up_without_a_window_waits_for_monday(ctx, world):
    saturday = ctx.clock.now().replace(day=7, hour=10)
    taken, run = held_follow_up(ctx, world, {"follow_up_days": "weekdays"}, saturday)
    assert taken == []
    assert (run.status, run.wait_reason) == ("pending", "send_window")
    assert run.due_at.date().isoformat() == "2026-03-09"  # Monday


def test_an_every_day_follow_up_still_obeys_its_window(ctx, world):
    evening = ctx.clock.now().replace(hour=20)
    window = {"start": "08:00", "end": "18:00"}
    taken, run = held_follow_up(
        ctx, world, {"follow_up_days": "every_day", "send_window": window}, evening
    )
    assert taken == []
    assert run.due_at.isoformat() == "2026-03-03T08:00:00+00:00"


def test_a_follow_ups_window_is_read_in_the_contacts_timezone(ctx, world):
    afternoon_in_new_york = ctx.clock.now().replace(hour=20)  # 15:00 in New York
    window = {"start": "08:00", "end": "18:00"}
    taken, run = held_follow_up(
        ctx,
        world,
        {"follow_up_days": "weekdays", "send_window": window},
        afternoon_in_new_york,
        timezone="America/New_York",
    )
    assert [c.run_id for c in taken] == [run.id]
    assert (run.status, run.wait_reason) == ("sending", None)


def test_a_follow_up_held_in_new_york_waits_for_the_morning_there(ctx, world):
    evening_in_new_york = ctx.clock.now().replace(day=3, hour=1)  # Monday 20:00 there
    window = {"start": "08:00", "end": "18:00"}
    taken, run = held_follow_up(
        ctx,
        world,
        {"follow_up_days": "weekdays", "send_window": window},
        evening_in_new_york,
        timezone="America/New_York",
    )
    assert taken == []
    assert run.due_at.isoformat() == "2026-03-03T13:00:00+00:00"  # 08:00 in New York


def test_the_daily_room_counts_this_mailboxs_sends_only(ctx, world):
    write(ctx, Mailbox, world.mailbox.id, daily_limit=1)
    [eid] = enroll_ids(world, [world.contact()])
    other = second_mailbox(ctx, world)
    sent = _message(ctx, world, "sent", sent_at=ctx.clock.now() - timedelta(hours=1))
    write(ctx, Message, sent, mailbox_id=other.id)
    [taken] = claim(ctx, "w1", world.mailbox.id)
    assert taken.enrollment_id == eid


def test_a_step_that_cannot_render_fails_alone_and_the_claim_goes_on(ctx, world):
    from cadenza.services.crm.contacts import update_contact

    cleared, kept = world.contact("gone@corp.example"), world.contact("kept@corp.example")
    cleared_id, kept_id = enroll_ids(world, [cleared, kept])
    update_contact(ctx, cleared.id, {"email": ""})
    [taken] = claim(ctx, "w1", world.mailbox.id)  # the failed one first, then the next
    assert taken.enrollment_id == kept_id
    run = run_of(ctx, cleared_id)
    assert (run.status, run.locked_by, run.last_error) == (
        "failed",
        None,
        "could not render (missing_email): the contact has no email address",
    )
    assert [m.to_email for m in rows(ctx, Message)] == ["kept@corp.example"]


# --- reminders ------------------------------------------------------------------------------


def test_a_reminder_claim_comes_after_the_steps_and_marks_its_task(ctx, world):
    task = due_reminder(ctx, world)
    [eid] = enroll_ids(world, [world.contact("a@corp.example")])
    now = ctx.clock.now()
    step, reminder = claim(ctx, "w1", world.mailbox.id)
    assert step.enrollment_id == eid and step.slot == now
    message = one(ctx, Message, reminder.message_pk)
    assert reminder.is_reminder and reminder.run_id is None
    assert reminder.enrollment_id == task.enrollment_id
    assert (reminder.mailbox_id, reminder.slot) == (world.mailbox.id, now + timedelta(seconds=6))
    assert (reminder.sender, reminder.recipient) == ("rep@example.com", "rep@example.com")
    assert reminder.raw == message.raw.encode("utf-8") and b"Task due: Call" in reminder.raw
    assert reminder.spacing == timedelta(seconds=6)
    assert (reminder.last_step, reminder.contact_id, reminder.sequence_id) == (False, None, 0)
    assert (reminder.step_position, reminder.task_id) == (0, task.id)
    assert (message.status, message.step_run_id) == ("prepared", None)
    assert one(ctx, Task, task.id).reminded_at == now
    # each takes the mailbox's own spacing (a reminder is never a bulk first step)
    assert one(ctx, Mailbox, world.mailbox.id).next_send_at == now + timedelta(seconds=12)
    assert claim(ctx, "w2", world.mailbox.id) == []  # at most once


def test_reminders_are_claimed_in_their_order_within_the_batch_and_this_mailbox(ctx, world):
    other = second_mailbox(ctx, world)
    now = ctx.clock.now()
    late = due_reminder(ctx, world, "l@corp.example")
    early = due_reminder(ctx, world, "e@corp.example")
    elsewhere = due_reminder(ctx, world, "x@corp.example", mailbox=other)
    write(ctx, Task, late.id, remind_at=now - timedelta(minutes=1))
    write(ctx, Task, early.id, remind_at=now - timedelta(minutes=2))
    [first] = claim(ctx, "w1", world.mailbox.id, batch_size=1)
    assert first.task_id == early.id
    write(ctx, Task, late.id, remind_at=now - timedelta(minutes=2))  # a tie: by id
    same = due_reminder(ctx, world, "s@corp.example")
    write(ctx, Task, same.id, remind_at=now - timedelta(minutes=2))
    ctx.clock.advance(timedelta(minutes=1))
    assert [c.task_id for c in claim(ctx, "w1", world.mailbox.id)] == [late.id, same.id]
    assert one(ctx, Task, elsewhere.id).reminded_at is None


def test_reminders_take_send_slots_and_daily_room(ctx, world):
    write(ctx, Mailbox, world.mailbox.id, daily_limit=1)
    due_reminder(ctx, world, "a@corp.example")
    due_reminder(ctx, world, "b@corp.example")
    [only] = claim(ctx, "w1", world.mailbox.id)
    assert only.is_reminder
    assert len([t for t in rows(ctx, Task) if t.reminded_at is None]) == 1  # left for later


def _message(ctx, world, status, sent_at, step_run_id=None, created_at=None):
    number = len(rows(ctx, Message))
    with ctx.db.transaction() as session:
        message = Message(
            mailbox_id=world.mailbox.id,
            step_run_id=step_run_id,
            message_id=f"<m{number}@example.com>",
            from_email="rep@example.com",
            to_email="rep@example.com",
            subject="Task due: earlier",
            body_html="<p>earlier</p>",
            body_text="earlier",
            status=status,
            sent_at=sent_at,
            created_at=created_at or ctx.clock.now(),
        )
        session.add(message)
        session.flush()
        return message.id


def test_lost_reminders_are_settled_once_their_lease_has_passed(ctx, world):
    now = ctx.clock.now()
    before = now - LEASE - timedelta(seconds=1)
    handing = _message(ctx, world, "handing", None, created_at=before)
    prepared = _message(ctx, world, "prepared", None, created_at=before)
    fresh = _message(ctx, world, "prepared", None, created_at=now - LEASE)  # not yet lost
    sent = _message(ctx, world, "sent", now - timedelta(hours=1), created_at=before)
    enroll_ids(world, [world.contact()])
    [step] = claim(ctx, "w1", world.mailbox.id)
    write(ctx, Message, step.message_pk, created_at=before)  # a step's: its lease decides
    enroll_ids(world, [world.contact("b@corp.example")])
    claim(ctx, "w2", world.mailbox.id)
    got = {m.id: m for m in rows(ctx, Message)}
    assert (got[handing].status, got[handing].smtp_reply) == (
        "unknown",
        "the worker stopped while handing it over",
    )
    assert (got[prepared].status, got[prepared].smtp_reply) == (
        "failed",
        "not sent: the worker stopped before handing it over",
    )
    assert (got[fresh].status, got[fresh].smtp_reply) == ("prepared", None)
    assert (got[sent].status, got[sent].smtp_reply) == ("sent", None)
    assert got[step.message_pk].status == "prepared"


def test_a_lost_reminder_of_another_mailbox_is_left_to_its_own_claim(ctx, world):
    now = ctx.clock.now()
    lost = _message(ctx, world, "handing", None, created_at=now - timedelta(hours=1))
    other = second_mailbox(ctx, world)
    write(ctx, Message, lost, mailbox_id=other.id)
    enroll_ids(world, [world.contact()], mailbox_id=world.mailbox.id)
    claim(ctx, "w1", world.mailbox.id)
    assert one(ctx, Message, lost).status == "handing"
    claim(ctx, "w1", other.id)  # its own mailbox's claim settles it, due work or not
    assert one(ctx, Message, lost).status == "unknown"


def test_a_handed_over_reminder_settled_while_in_flight_stops_taking_room(ctx, world):
    write(ctx, Mailbox, world.mailbox.id, daily_limit=1)
    due_reminder(ctx, world, "a@corp.example")
    [reminder] = claim(ctx, "dead", world.mailbox.id)
    assert delivery.hand_over(ctx, reminder, "dead") is HandOver.GO
    ctx.clock.advance(LEASE * 2)
    [eid] = enroll_ids(world, [world.contact("b@corp.example")])
    [step] = claim(ctx, "w1", world.mailbox.id)  # the dead reminder no longer holds the room
    assert step.enrollment_id == eid
    assert one(ctx, Message, reminder.message_pk).status == "unknown"


def test_contacts_are_read_for_the_whole_batch(ctx, world):
    contacts = [world.contact(f"p{i}@corp.example", firstname=f"P{i}") for i in range(3)]
    for c in contacts:
        enroll_ids(world, [c])
    taken = claim(ctx, "w1", world.mailbox.id)
    assert [c.recipient for c in taken] == [c.email for c in contacts]
    assert [c.contact_id for c in taken] == [c.id for c in contacts]
    for held, contact in zip(taken, contacts, strict=True):
        assert f"Subject: Hi {contact.firstname}".encode() in held.raw
    assert [e.contact_id for e in rows(ctx, Enrollment)] == [c.id for c in contacts]


# --- many mailboxes in one claim ------------------------------------------------------------


def test_one_claim_takes_several_mailboxes_each_within_its_own_throttle(ctx, world):
    other = second_mailbox(ctx, world)
    for a, b in zip(world.contacts(3, prefix="a"), world.contacts(3, prefix="b"), strict=True):
        enroll_ids(world, [a], mailbox_id=world.mailbox.id)  # one at a time: not bulk
        enroll_ids(world, [b], mailbox_id=other.id)

    claimed = claims.claim_emails(
        ctx,
        [world.mailbox.id, other.id],
        "w1",
        batch_size=10,
        horizon=timedelta(seconds=7),  # two slots at 10 a minute: now and 6 s later
        lease=LEASE,
    )

    now = ctx.clock.now()
    by_mailbox = {
        box: [c.slot for c in claimed if c.mailbox_id == box]
        for box in (world.mailbox.id, other.id)
    }
    assert by_mailbox == {box: [now, now + timedelta(seconds=6)] for box in by_mailbox}
    assert {m.mailbox_id for m in rows(ctx, Message)} == {world.mailbox.id, other.id}
    boxes = {b.id: b.next_send_at for b in rows(ctx, Mailbox)}
    assert boxes[world.mailbox.id] == boxes[other.id] == now + timedelta(seconds=12)


def test_a_claim_reads_only_what_the_throttle_grants_and_marks_every_other_due_run(ctx, world):
    """Thirty due, one slot: one message is composed; all 29 others (not only a batch of
    them) say they wait for the rate limit."""
    enroll_ids(world, world.contacts(30))

    claimed = claim(ctx, "w1", world.mailbox.id, batch_size=10, horizon=timedelta(seconds=2))

    assert len(claimed) == 1 and len(rows(ctx, Message)) == 1
    waiting = [r.wait_reason for r in rows(ctx, StepRun) if r.status == "pending"]
    assert waiting == ["rate_limit"] * 29


@pytest.mark.parametrize(
    ("per_minute", "granted", "waiting"), [(6000, 2, None), (20, 1, "rate_limit")]
)
def test_runs_behind_a_claims_batch_wait_for_the_mailboxes_limit_only_when_it_held_them(
    ctx, per_minute, granted, waiting
):
    """Five due, a batch of two. At 6,000 a minute the throttle could grant them all
    before the horizon: the batch held the others back, they are the next claim's, no
    reason is written (it would say "held back by the per-minute limit", falsely, and
    cost a row written each) and the next round offers the mailbox. At 20 a minute (one
    slot in two seconds) the limit holds them: they say so, and the next round does not
    offer the mailbox before its slot."""
    [box] = seed_due_emails(ctx, 5, mailboxes=1, per_minute_limit=per_minute)
    ctx.clock.advance(timedelta(seconds=1))  # the seed's due times are a microsecond apart

    claimed = claims.claim_emails(
        ctx, box, "w1", batch_size=2, horizon=timedelta(seconds=2), lease=LEASE
    )

    assert len(claimed) == granted
    pending = [r.wait_reason for r in rows(ctx, StepRun) if r.status == "pending"]
    assert pending == [waiting] * (5 - granted)
    slot_before = ctx.clock.now() + timedelta(seconds=2)
    offered = claims.mailboxes_with_due_email(ctx, slot_before=slot_before, due_before=slot_before)
    assert offered == ([box] if waiting is None else [])


def test_a_claim_of_a_mailbox_with_no_slot_before_the_horizon_composes_nothing(ctx, world):
    enroll_ids(world, world.contacts(2))
    write(ctx, Mailbox, world.mailbox.id, next_send_at=ctx.clock.now() + timedelta(minutes=1))

    assert claim(ctx, "w1", world.mailbox.id, horizon=timedelta(seconds=2)) == []
    assert rows(ctx, Message) == []
    assert {r.wait_reason for r in rows(ctx, StepRun)} == {"rate_limit"}
    # and the round does not even look at it: no slot before now + horizon
    assert (
        claims.mailboxes_with_due_email(ctx, slot_before=ctx.clock.now() + timedelta(seconds=2))
        == []
    )
    assert claims.mailboxes_with_due_email(
        ctx, slot_before=ctx.clock.now() + timedelta(minutes=1)
    ) == [world.mailbox.id]


def test_a_mailbox_with_no_slot_yet_taken_but_a_due_run_told_why_is_still_looked_at(ctx, world):
    """No next slot recorded (never sent) and a due run already marked (a retry, say):
    the mailbox is claimable; one with a slot past the horizon whose runs were all told
    why they wait is not."""
    [eid] = enroll_ids(world, [world.contact()])
    write(ctx, StepRun, run_of(ctx, eid).id, wait_reason="retry")
    soon = ctx.clock.now() + timedelta(seconds=2)
    assert claims.mailboxes_with_due_email(ctx, slot_before=soon) == [world.mailbox.id]
    write(ctx, Mailbox, world.mailbox.id, next_send_at=soon + timedelta(seconds=1))
    assert claims.mailboxes_with_due_email(ctx, slot_before=soon) == []


def test_emails_given_back_do_not_hold_their_own_daily_room(ctx):
    """Four due, a daily limit of three. A worker claims three, then gives them back (it
    stops, or lets the mailbox go to another worker): their messages stay composed
    (`prepared`), their runs are pending. Counted as in flight, they held the mailbox at
    its limit and the next claim got nothing, for as long as the 24 hours took to free
    room. They count again once claimed, and the fourth still waits."""
    [box] = seed_due_emails(ctx, 4, mailboxes=1, daily_limit=3)
    ctx.clock.advance(timedelta(seconds=1))  # the seed's due times are a microsecond apart
    grant = {"batch_size": 10, "horizon": timedelta(seconds=2), "lease": LEASE}
    made = claims.claim_emails(ctx, box, "w1", **grant)
    assert len(made) == 3
    with ctx.db.read() as session:
        assert claims.counted_last_24h(session, box, ctx.clock.now()) == 3

    recovery.release_unsent(ctx, made, "w1")
    with ctx.db.read() as session:
        assert claims.counted_last_24h(session, box, ctx.clock.now()) == 0

    again = claims.claim_emails(ctx, box, "w2", **grant)
    assert {c.message_pk for c in again} == {c.message_pk for c in made}  # the same messages
    with ctx.db.read() as session:
        assert claims.counted_last_24h(session, box, ctx.clock.now()) == 3
    assert claims.claim_emails(ctx, box, "w3", **grant) == []  # nothing past the limit
    assert [r.wait_reason for r in rows(ctx, StepRun) if r.status == "pending"] == ["daily_limit"]


def test_an_email_waiting_for_its_retry_holds_no_daily_room(ctx):
    """The server deferred it (4xx): its run waits for the retry, pending, its message
    composed. Until it is claimed again it holds no room; claimed, it counts again."""
    [box] = seed_due_emails(ctx, 1, mailboxes=1, daily_limit=1)
    ctx.clock.advance(timedelta(seconds=1))
    grant = {"batch_size": 10, "horizon": timedelta(seconds=2), "lease": LEASE}
    [claimed] = claims.claim_emails(ctx, box, "w1", **grant)
    assert delivery.hand_over(ctx, claimed, "w1") is HandOver.GO
    deferred = DeliveryResult(DeliveryOutcome.TRANSIENT, 451, "try again later")
    delivery.record_outcomes(ctx, [(claimed, deferred)], "w1")
    assert run_of(ctx, claimed.enrollment_id).wait_reason == "retry"
    with ctx.db.read() as session:
        assert claims.counted_last_24h(session, box, ctx.clock.now()) == 0

    ctx.clock.advance(timedelta(hours=3))  # past the longest backoff
    [again] = claims.claim_emails(ctx, box, "w1", **grant)
    assert again.message_pk == claimed.message_pk  # the very same message
    with ctx.db.read() as session:
        assert claims.counted_last_24h(session, box, ctx.clock.now()) == 1


def test_one_claim_counts_each_mailboxs_daily_room_apart(ctx, world):
    """Two mailboxes in one claim: the one at its daily limit gets nothing and says why,
    the other sends; neither's sends count against the other."""
    other = second_mailbox(ctx, world)
    write(ctx, Mailbox, world.mailbox.id, daily_limit=1)
    write(ctx, Mailbox, other.id, daily_limit=1)
    [sent] = enroll_ids(world, [world.contact("s@corp.example")], mailbox_id=world.mailbox.id)
    claims.claim_emails(ctx, [world.mailbox.id], "w0", batch_size=10, horizon=LEASE, lease=LEASE)
    [full] = enroll_ids(world, [world.contact("a@corp.example")], mailbox_id=world.mailbox.id)
    [free] = enroll_ids(world, [world.contact("b@corp.example")], mailbox_id=other.id)

    claimed = claims.claim_emails(
        ctx, [other.id, world.mailbox.id], "w1", batch_size=10, horizon=LEASE, lease=LEASE
    )

    assert [c.enrollment_id for c in claimed] == [free]
    assert run_of(ctx, full).wait_reason == "daily_limit"
    assert run_of(ctx, sent).status == "sending"
    with ctx.db.read() as session:
        now = ctx.clock.now()
        assert claims.counted_last_24h(session, world.mailbox.id, now) == 1
        assert claims.counted_last_24h(session, other.id, now) == 1
        assert claims.counted_last_24h(session, MISSING_ID, now) == 0


def test_runs_are_marked_waiting_in_the_held_mailbox_only_and_email_steps_only(ctx, world):
    other = second_mailbox(ctx, world)
    [done] = enroll_ids(world, [world.contact("d@corp.example")], mailbox_id=world.mailbox.id)
    write(ctx, StepRun, run_of(ctx, done).id, status="sent")  # due once, sent since
    for c in world.contacts(3, prefix="a"):
        enroll_ids(world, [c], mailbox_id=world.mailbox.id)  # one at a time: 6 s apart
    [elsewhere] = enroll_ids(world, [world.contact("b@corp.example")], mailbox_id=other.id)
    calls = world.make_sequence(steps=TASK_STEP, name="Calls")
    [call] = enroll_ids(
        world, [world.contact("t@corp.example")], calls, mailbox_id=world.mailbox.id
    )

    [claimed] = claim(ctx, "w1", world.mailbox.id, horizon=timedelta(seconds=2))

    runs = {r.enrollment_id: r for r in rows(ctx, StepRun)}
    held = [
        r
        for r in runs.values()
        if r.mailbox_id == world.mailbox.id and r.step_type == "email" and r.enrollment_id != done
    ]
    assert sorted(r.wait_reason or "-" for r in held) == ["-", "rate_limit", "rate_limit"]
    assert runs[claimed.enrollment_id].wait_reason is None  # the granted one
    assert runs[elsewhere].wait_reason is None  # another mailbox's, not claimed
    assert runs[call].wait_reason is None  # a task step is no email
    assert runs[done].wait_reason is None  # no longer pending


def test_follow_ups_outside_their_window_are_moved_until_one_can_be_sent(ctx, world):
    """Slots for two: the two earliest due follow-ups are outside their window (moved to
    the morning), the claim reads on and grants the next two, in due order."""
    due = ctx.clock.now()
    ids = closed_follow_ups(ctx, world, ["Asia/Tokyo", "Asia/Tokyo", "UTC", "UTC", "UTC"], "f")

    claimed = claim(ctx, "w1", world.mailbox.id, batch_size=10, horizon=timedelta(seconds=7))

    assert [c.enrollment_id for c in claimed] == ids[2:4]
    runs = {r.enrollment_id: r for r in rows(ctx, StepRun)}
    assert {runs[e].wait_reason for e in ids[:2]} == {"send_window"}
    assert all(runs[e].due_at > due for e in ids[:2])
    assert runs[ids[4]].wait_reason == "rate_limit"


def test_a_claim_reading_on_past_a_moved_follow_up_never_takes_a_run_twice(ctx, world):
    """Slots for two: the first due follow-up is granted, the second is outside its
    window (moved); reading on must skip the one already granted and take the third."""
    ids = closed_follow_ups(ctx, world, ["UTC", "Asia/Tokyo", "UTC", "UTC"], "g")

    claimed = claim(ctx, "w1", world.mailbox.id, batch_size=10, horizon=timedelta(seconds=7))

    assert [c.enrollment_id for c in claimed] == [ids[0], ids[2]]
    assert len(rows(ctx, Message)) == 2  # one message each
    runs = {r.enrollment_id: r for r in rows(ctx, StepRun)}
    assert (runs[ids[1]].wait_reason, runs[ids[3]].wait_reason) == ("send_window", "rate_limit")


def closed_follow_ups(ctx, world, zones, prefix):
    """Second-step runs of a sequence closed after 17:00 (18:00 in Tokyo), one per zone,
    all due, the first most overdue: their enrollment ids in that order."""
    closed = world.make_sequence(
        steps=[ONE_EMAIL[0], {**ONE_EMAIL[0], "delay_days": 1}],
        settings={"send_window": {"start": "08:00", "end": "17:00"}},
        name="Closed in Tokyo",
    )
    ids = []
    for i, zone in enumerate(zones):
        contact = world.contact(f"{prefix}{i}@corp.example")
        [eid] = enroll_ids(world, [contact], closed, timezone=zone)
        ids.append(eid)
    due = ctx.clock.now()
    with ctx.db.transaction() as session:
        for n, eid in enumerate(ids):
            run = session.query(StepRun).filter_by(enrollment_id=eid).one()
            run.step_position, run.due_at = 2, due - timedelta(minutes=10 - n)
    return ids


def test_one_claim_of_more_mailboxes_than_one_read_takes(ctx):
    """The claim reads its mailboxes' due runs fifty mailboxes a statement: a caller
    passing hundreds at once (more than SQLite's 500 terms of one compound query) still
    gets each mailbox's email, once."""
    from tests.support.seed import seed_due_emails

    boxes = seed_due_emails(ctx, 501, mailboxes=501)
    ctx.clock.advance(timedelta(seconds=1))  # the seed's due times are a microsecond apart
    taken = claims.claim_emails(
        ctx, boxes, "w1", batch_size=1, horizon=timedelta(minutes=5), lease=LEASE
    )
    assert sorted(c.mailbox_id for c in taken) == sorted(boxes)
