"""The engine on an injected clock, through the capture transport, on both databases."""

import itertools
from datetime import timedelta
from email import message_from_string
from email.policy import default as default_policy
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cadenza.services.delivery import claims
from cadenza.services.delivery import handover as delivery
from cadenza.services.enrollment import control as enrollment_control
from cadenza.services.enrollment.tasks import TaskEdits, complete_task, list_tasks, skip_task
from cadenza.services.sequences.catalog import replace_sequence
from cadenza.store.models import Enrollment, Message, StepRun, Task
from tests.conftest import crash_while_handing_over, enroll_ids, spaced_ok

FIVE_STEPS = [
    {"type": "email", "subject": "Hello {{ contact.firstname }}", "body": "<p>One</p>"},
    {"type": "email", "delay_days": 7, "thread_with_step": 1, "body": "<p>Two</p>"},
    {"type": "task", "delay_days": 3, "task_type": "call",
     "task_title": "Call {{ contact.firstname }}"},
    {"type": "manual_email", "delay_days": 7, "subject": "Draft for {{ contact.firstname }}",
     "body": "<p>Four</p>"},
    {"type": "email", "delay_days": 9, "thread_with_step": 1, "body": "<p>Five</p>"},
]  # fmt: skip


def messages(ctx):
    with ctx.db.transaction() as session:
        return list(session.scalars(select(Message).order_by(Message.id)))


def enrollment(ctx, enrollment_id):
    with ctx.db.transaction() as session:
        return session.get(Enrollment, enrollment_id)


def runs(ctx, enrollment_id):
    with ctx.db.transaction() as session:
        return list(
            session.scalars(
                select(StepRun)
                .where(StepRun.enrollment_id == enrollment_id)
                .order_by(StepRun.step_position)
            )
        )


def test_five_step_three_week_sequence_runs_on_the_injected_clock(ctx, world, worker):
    sequence = world.make_sequence(steps=FIVE_STEPS, settings={"follow_up_days": "every_day"})
    contact = world.contact(timezone="America/New_York")
    start = ctx.clock.now()  # Monday 2026-03-02 04:00 in New York
    [eid] = enroll_ids(world, [contact], sequence)
    worker.run_until(start + timedelta(days=11))
    [task] = list_tasks(ctx, owner_id=world.user.id)
    assert task.title == "Call Ann" and task.type == "call"
    assert task.due_at == start + timedelta(days=10, hours=-1)  # 04:00 EDT after the DST change
    ctx.clock.set(start + timedelta(days=11, hours=3))
    complete_task(ctx, task.id)  # step 4 is due 7 days after this completion
    worker.run_until(start + timedelta(days=19))
    [draft] = list_tasks(ctx, owner_id=world.user.id)
    assert draft.type == "email" and draft.draft_subject == "Draft for Ann"
    assert draft.due_at == start + timedelta(days=18, hours=3)
    complete_task(ctx, draft.id, edits=TaskEdits(subject="Edited for Ann"))  # sent right away
    worker.run_until(start + timedelta(days=30))

    sent = messages(ctx)
    assert [m.subject for m in sent] == [
        "Hello Ann",
        "Re: Hello Ann",
        "Edited for Ann",
        "Re: Hello Ann",
    ]
    assert [m.sent_at for m in sent] == [
        start,
        start + timedelta(days=7, hours=-1),
        start + timedelta(days=19),
        start + timedelta(days=28),
    ]
    # local wall-clock hours survive the DST change of 2026-03-08 in New York
    local = [m.sent_at.astimezone(ZoneInfo("America/New_York")) for m in sent]
    assert [t.hour for t in local] == [4, 4, 5, 5]
    first, second, _, fifth = (message_from_string(m.raw, policy=default_policy) for m in sent)
    assert second["In-Reply-To"] == first["Message-ID"] == fifth["In-Reply-To"]
    assert second["References"] == first["Message-ID"]
    assert enrollment(ctx, eid).state == "finished"
    assert [r.status for r in runs(ctx, eid)] == ["sent", "sent", "done", "sent", "sent"]


def test_a_task_step_holds_the_sequence_until_completed(ctx, world, worker):
    steps = [
        {"type": "task", "task_title": "Research"},
        {"type": "email", "delay_days": 1, "subject": "Hi", "body": "<p>Hi</p>"},
    ]
    contact = world.contact()
    [eid] = enroll_ids(world, [contact], world.make_sequence(steps=steps))
    worker.run_until(ctx.clock.now() + timedelta(days=10))
    assert messages(ctx) == []
    assert [r.status for r in runs(ctx, eid)] == ["waiting_task"]
    [task] = list_tasks(ctx)
    skip_task(ctx, task.id)
    worker.run_until(ctx.clock.now() + timedelta(days=2))
    assert [m.subject for m in messages(ctx)] == ["Hi"]


def test_continue_without_completing_moves_on_at_creation(ctx, world, worker):
    steps = [
        {"type": "task", "task_title": "Connect", "task_type": "linkedin",
         "continue_without_completing": True},
        {"type": "email", "delay_days": 1, "subject": "Hi", "body": "<p>Hi</p>"},
    ]  # fmt: skip
    start = ctx.clock.now()
    [eid] = enroll_ids(world, [world.contact()], world.make_sequence(steps=steps))
    worker.run_until(start + timedelta(days=3))
    assert [m.sent_at for m in messages(ctx)] == [start + timedelta(days=1)]
    assert [t.status for t in list_tasks(ctx)] == ["open"]
    assert enrollment(ctx, eid).state == "finished"


def test_editing_a_sequence_mid_flight_does_not_change_running_enrollments(ctx, world, worker):
    [eid] = enroll_ids(world, [world.contact()])
    worker.tick()
    replace_sequence(
        ctx,
        world.sequence.id,
        name="Changed",
        settings={},
        steps=[
            {"type": "email", "subject": "New", "body": "<p>New</p>"},
            {"type": "email", "delay_days": 1, "subject": "New 2", "body": "<p>Changed</p>"},
        ],
    )
    worker.run_until(ctx.clock.now() + timedelta(days=4))
    assert [m.subject for m in messages(ctx)] == ["Hi Ann", "Re: Hi Ann"]
    assert "Bump" in messages(ctx)[1].body_html
    assert [r.step_position for r in runs(ctx, eid)] == [1, 2, 3]


def test_per_minute_limit_spaces_sends_in_due_order(ctx, world, worker):
    contacts = world.contacts(25)
    for c in contacts:  # one by one: not bulk, so the mailbox's 10 per minute applies
        enroll_ids(world, [c])
    worker.run_until(ctx.clock.now() + timedelta(minutes=10))
    first_steps = [m for m in messages(ctx) if not m.in_reply_to]
    times = [m.sent_at for m in first_steps]
    assert len(times) == 25 and times == sorted(times)
    assert spaced_ok(times, 10) and not spaced_ok(times, 9)
    assert all(b - a >= timedelta(seconds=6) for a, b in itertools.pairwise(times))
    assert [m.contact_id for m in first_steps] == [c.id for c in contacts]


def test_bulk_enrolled_first_steps_go_three_per_minute(ctx, world, worker):
    world.contacts(1)  # a contact enrolled alone first
    enroll_ids(world, world.contacts(12, prefix="bulk"))
    worker.run_until(ctx.clock.now() + timedelta(minutes=10))
    times = [m.sent_at for m in messages(ctx)]
    assert len(times) == 12 and spaced_ok(times, 3) and not spaced_ok(times, 2)


def test_rolling_daily_limit_delays_never_drops(ctx, world, worker):
    with ctx.db.transaction() as session:
        from cadenza.store.models import Mailbox

        mailbox = session.get(Mailbox, world.mailbox.id)
        mailbox.daily_limit, mailbox.per_minute_limit = 5, 60
    start = ctx.clock.now()
    for c in world.contacts(8):
        enroll_ids(world, [c], world.make_sequence(steps=FIVE_STEPS[:1], name=f"s{c.id}"))
    worker.run_until(start + timedelta(hours=23))
    assert len(messages(ctx)) == 5
    waiting = [r for r in delivery_waiting(ctx)]
    assert {r.wait_reason for r in waiting} == {"daily_limit"} and len(waiting) == 3
    worker.run_until(start + timedelta(hours=25))
    sent = [m.sent_at for m in messages(ctx)]
    assert len(sent) == 8 and all(t >= start + timedelta(hours=24) for t in sent[5:])


def delivery_waiting(ctx):
    from cadenza.services.delivery.outbox import list_waiting

    return list_waiting(ctx)


def test_a_held_follow_up_still_obeys_the_send_window(ctx, world, worker):
    from cadenza.store.models import Mailbox

    sequence = world.make_sequence(
        steps=[
            {"type": "email", "subject": "One", "body": "<p>1</p>"},
            {"type": "email", "delay_days": 1, "subject": "Two", "body": "<p>2</p>"},
        ],
        settings={"follow_up_days": "weekdays", "send_window": {"start": "08:00", "end": "18:00"}},
    )
    # Monday 17:59 in UTC: the 3 first emails go within seconds of each other...
    ctx.clock.set(ctx.clock.now().replace(hour=17, minute=59))
    for c in world.contacts(3):
        enroll_ids(world, [c], sequence, timezone="UTC")
    worker.run_until(ctx.clock.now() + timedelta(minutes=1))
    firsts = sorted(m.sent_at for m in messages(ctx) if m.subject == "One")
    assert len(firsts) == 3 and firsts[-1] < ctx.clock.now().replace(minute=59, second=30)
    # ...so the 3 follow-ups are all due Tuesday 17:59, inside the window; one a
    # minute from now on holds two of them past 18:00, when the window has closed
    with ctx.db.transaction() as session:
        session.get(Mailbox, world.mailbox.id).per_minute_limit = 1
    worker.run_until(ctx.clock.now() + timedelta(days=3))
    follow_ups = sorted(m.sent_at for m in messages(ctx) if m.subject == "Two")
    assert [t.isoformat() for t in follow_ups] == [
        "2026-03-03T17:59:00+00:00",
        "2026-03-04T08:00:00+00:00",  # held: the next morning, not 18:00 on Tuesday
        "2026-03-04T08:01:00+00:00",
    ]


def test_unenroll_or_pause_between_claim_and_hand_over_stops_the_send(ctx, world):
    first, second = world.contacts(2)
    [e1] = enroll_ids(world, [first])
    [e2] = enroll_ids(world, [second])
    [mailbox_id] = claims.mailboxes_with_due_email(ctx)
    held = claims.claim_emails(
        ctx, mailbox_id, "w1", batch_size=10,
        horizon=timedelta(minutes=5), lease=timedelta(minutes=5),
    )  # fmt: skip
    assert len(held) == 2
    enrollment_control.unenroll(ctx, e1)
    enrollment_control.pause(ctx, e2)  # pause and unenroll act even while the worker holds them
    for claim in held:
        assert delivery.hand_over(ctx, claim, "w1") == "skip"
    assert [r.status for r in runs(ctx, e1)] == ["cancelled"]
    assert [r.status for r in runs(ctx, e2)] == ["paused"]
    enrollment_control.resume(ctx, e2)
    assert [r.status for r in runs(ctx, e2)] == ["pending"]


def test_dead_worker_claims_are_recovered_without_resending(ctx, world, worker):
    contacts = world.contacts(3)
    enrollment_ids = enroll_ids(world, contacts)
    [mailbox_id] = claims.mailboxes_with_due_email(ctx)
    held = claims.claim_emails(
        ctx, mailbox_id, "dead", batch_size=10,
        horizon=timedelta(minutes=5), lease=timedelta(minutes=5),
    )  # fmt: skip
    # it died after committing the hand-over of #1
    assert delivery.hand_over(ctx, held[0], "dead") == "go"
    handed_id = messages(ctx)[0].message_id
    ctx.clock.advance(timedelta(minutes=30))  # its leases expire
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    by_status = {m.message_id: m.status for m in messages(ctx)}
    assert by_status[handed_id] == "unknown"
    assert sorted(by_status.values()) == ["sent", "sent", "unknown"]
    # the unsent ones went with the Message-IDs fixed before the crash
    assert {m.message_id for m in messages(ctx)} == set(by_status)
    flagged = [enrollment(ctx, eid).needs_attention for eid in enrollment_ids]
    assert flagged == [True, False, False]
    worker.run_until(ctx.clock.now() + timedelta(days=30))
    assert [m.status for m in messages(ctx) if m.message_id == handed_id] == ["unknown"]


def test_reviewing_an_unknown_send(ctx, world, worker):
    from cadenza.services.delivery.outbox import resolve_unknown

    [eid] = enroll_ids(world, [world.contact()])
    crash_while_handing_over(ctx, worker)
    [message] = messages(ctx)
    assert message.status == "unknown"
    resolve_unknown(ctx, message.id, delivered=True)
    assert [r.status for r in runs(ctx, eid)] == ["sent", "pending"]
    assert enrollment(ctx, eid).needs_attention is False


def test_a_step_that_cannot_render_fails_and_flags_the_enrollment(ctx, world, worker):
    from cadenza.services.crm.contacts import update_contact

    contact = world.contact()
    [eid] = enroll_ids(world, [contact])
    update_contact(ctx, contact.id, {"firstname": ""})  # the token is gone by send time
    worker.tick()
    record = enrollment(ctx, eid)
    assert (record.state, record.reason, record.needs_attention) == (
        "unenrolled",
        "send_failed",
        True,
    )
    assert "contact.firstname" in runs(ctx, eid)[0].last_error
    assert messages(ctx) == []


def test_a_contact_whose_email_was_cleared_fails_alone_and_the_batch_goes_on(ctx, world, worker):
    """Found by the type checker (compose passed a nullable email on): before, the claim
    raised for the whole mailbox's batch, at every tick."""
    from cadenza.services.crm.contacts import update_contact

    cleared, kept = world.contact("gone@corp.example"), world.contact("kept@corp.example")
    cleared_id, kept_id = enroll_ids(world, [cleared, kept])
    update_contact(ctx, cleared.id, {"email": ""})
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))  # one slot per tick: both go
    record = enrollment(ctx, cleared_id)
    assert (record.state, record.reason, record.needs_attention) == (
        "unenrolled",
        "send_failed",
        True,
    )
    assert runs(ctx, cleared_id)[0].last_error == (
        "could not render (missing_email): the contact has no email address"
    )
    assert [(m.to_email, m.status) for m in messages(ctx)] == [("kept@corp.example", "sent")]
    assert runs(ctx, kept_id)[0].status == "sent"


def test_task_reminders_are_set_when_the_sequence_asks(ctx, world, worker):
    sequence = world.make_sequence(
        steps=[{"type": "task", "task_title": "Call"}], settings={"task_reminders": True}
    )
    enroll_ids(world, [world.contact()], sequence)
    worker.tick()
    with ctx.db.transaction() as session:
        task = session.scalars(select(Task)).one()
    assert task.remind_at == task.due_at


def test_the_enrollment_view_titles_steps_by_what_went_out(ctx, world, worker):
    from cadenza.services.enrollment.views import get_enrollment

    [eid] = enroll_ids(world, [world.contact()])
    worker.tick()
    titles = [(s.status, s.title) for s in get_enrollment(ctx, eid).steps]
    assert titles == [
        ("sent", "Hi Ann"),  # rendered, as sent
        ("pending", "reply in the thread of step 1"),
        ("projected", "Call Ann"),  # filled for the contact before it happens
    ]
