"""Handing a claimed email over and recording what came of it
(services/delivery/handover.py), driven directly through the service: the last check
before a message leaves, the mailbox's hand-over mark, and what each outcome leaves in
the message, its step run, its attempts, the enrollment, the mailbox and the events.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from cadenza.domain.delivery_outcome import DeliveryOutcome, DeliveryResult
from cadenza.services.delivery import handover as delivery
from cadenza.services.delivery.handover import MAX_ATTEMPTS, HandOver
from cadenza.services.delivery.sent_steps import SentStep, record_step_sent
from cadenza.services.enrollment import control as enrollment_control
from cadenza.services.enrollment.tasks import create_due_tasks
from cadenza.services.events_out import webhooks
from cadenza.store.models import (
    DeliveryAttempt,
    Enrollment,
    Mailbox,
    Message,
    StepRun,
    Task,
    WebhookDelivery,
)
from tests.conftest import enroll_ids
from tests.support.rows import LEASE, ONE_EMAIL, claim, one, rows, write

TASK_STEP = [{"type": "task", "task_title": "Call"}]
SENT = DeliveryResult(DeliveryOutcome.SENT, 250, "2.0.0 OK queued")
BUSY = DeliveryResult(DeliveryOutcome.TRANSIENT, 451, "4.3.0 try later")
REFUSED = DeliveryResult(DeliveryOutcome.PERMANENT, 550, "5.1.1 no such user")
NO_ANSWER = DeliveryResult(DeliveryOutcome.UNKNOWN, None, "no answer after DATA")
BAD_LOGIN = DeliveryResult(DeliveryOutcome.AUTH_FAILED, 535, "5.7.8 credentials invalid")


@pytest.fixture
def settings(settings):
    """Webhooks here are only written, never sent: a loopback address is enough."""
    return settings.model_copy(update={"outbound_allow": "127.0.0.1"})


def handed(ctx, world, worker_id="w1", sequence=None, email="ann@corp.example"):
    """One email claimed and handed over by `worker_id`: its claim."""
    enroll_ids(world, [world.contact(email)], sequence)
    [held] = claim(ctx, worker_id, world.mailbox.id)
    assert delivery.hand_over(ctx, held, worker_id) is HandOver.GO
    return held


def reminder_claim(ctx, world):
    calls = world.make_sequence(steps=TASK_STEP, settings={"task_reminders": True}, name="Calls")
    [eid] = enroll_ids(world, [world.contact("t@corp.example")], calls)
    assert create_due_tasks(ctx) == 1
    [held] = claim(ctx, "w1", world.mailbox.id)
    assert held.is_reminder
    return held, eid


def attempts(ctx):
    return [
        (a.message_id, a.attempt, a.outcome, a.code, a.reply, a.at)
        for a in rows(ctx, DeliveryAttempt)
    ]


# --- the hand-over --------------------------------------------------------------------------


def test_handing_over_marks_the_message_and_the_mailbox(ctx, world):
    enroll_ids(world, [world.contact()])
    [held] = claim(ctx, "w1", world.mailbox.id)
    now = ctx.clock.now()
    assert one(ctx, Mailbox, world.mailbox.id).last_handed_at is None
    assert delivery.hand_over(ctx, held, "w1") is HandOver.GO
    message = one(ctx, Message, held.message_pk)
    assert (message.status, message.handed_at) == ("handing", now)
    assert one(ctx, Mailbox, world.mailbox.id).last_handed_at == now
    run = one(ctx, StepRun, held.run_id)
    assert (run.status, run.locked_by) == ("sending", "w1")


def test_a_mailbox_hands_over_no_faster_than_its_spacing(ctx, world):
    for c in world.contacts(3):
        enroll_ids(world, [c])
    first, second, third = claim(ctx, "w1", world.mailbox.id)
    start = ctx.clock.now()
    assert delivery.hand_over(ctx, first, "w1") is HandOver.GO
    ctx.clock.advance(timedelta(seconds=5))  # the spacing is 6 seconds
    assert delivery.hand_over(ctx, second, "w1") is HandOver.WAIT
    message = one(ctx, Message, second.message_pk)
    assert (message.status, message.handed_at) == ("prepared", None)  # taken back
    assert one(ctx, Mailbox, world.mailbox.id).last_handed_at == start
    ctx.clock.advance(timedelta(seconds=1))  # exactly the spacing after: may go
    assert delivery.hand_over(ctx, second, "w1") is HandOver.GO
    assert one(ctx, Message, second.message_pk).status == "handing"
    assert one(ctx, Mailbox, world.mailbox.id).last_handed_at == ctx.clock.now()
    assert third.spacing == timedelta(seconds=6)


def test_only_the_owner_of_a_sending_run_hands_its_prepared_message_over(ctx, world):
    enroll_ids(world, [world.contact()])
    [held] = claim(ctx, "w1", world.mailbox.id)
    assert delivery.hand_over(ctx, held, "w2") is HandOver.SKIP  # not its claim
    assert one(ctx, Message, held.message_pk).status == "prepared"
    run = one(ctx, StepRun, held.run_id)
    assert (run.status, run.locked_by) == ("sending", "w1")  # left to its owner
    write(ctx, StepRun, held.run_id, status="pending")
    assert delivery.hand_over(ctx, held, "w1") is HandOver.SKIP  # no longer sending
    assert one(ctx, Message, held.message_pk).status == "prepared"
    write(ctx, StepRun, held.run_id, status="sending")
    write(ctx, Message, held.message_pk, status="failed")
    assert delivery.hand_over(ctx, held, "w1") is HandOver.SKIP  # no longer prepared
    assert one(ctx, Message, held.message_pk).status == "failed"
    assert one(ctx, Mailbox, world.mailbox.id).last_handed_at is None
    write(ctx, Message, held.message_pk, status="prepared")
    assert delivery.hand_over(ctx, held, "w1") is HandOver.GO


def test_owning_another_claim_does_not_make_a_worker_the_owner_of_this_one(ctx, world):
    for c in world.contacts(2):
        enroll_ids(world, [c])
    taken, mine = claim(ctx, "w1", world.mailbox.id)
    write(ctx, StepRun, taken.run_id, locked_by="w2")  # taken over; w1 still holds `mine`
    assert delivery.hand_over(ctx, taken, "w1") is HandOver.SKIP
    assert one(ctx, Message, taken.message_pk).status == "prepared"
    write(ctx, StepRun, taken.run_id, locked_by="w1")
    assert delivery.hand_over(ctx, taken, "w1") is HandOver.GO
    write(ctx, StepRun, taken.run_id, locked_by="w2")  # taken over while handing
    delivery.record_outcomes(ctx, [(taken, SENT)], "w1")
    assert one(ctx, Message, taken.message_pk).status == "handing"  # the new owner's to say
    assert one(ctx, StepRun, taken.run_id).status == "sending"
    assert one(ctx, StepRun, mine.run_id).locked_by == "w1"


def test_a_paused_or_ended_enrollment_or_a_disconnected_mailbox_stops_the_hand_over(ctx, world):
    ids = [enroll_ids(world, [c])[0] for c in world.contacts(4)]
    paused, ended, disconnected, others = ids
    held = {c.enrollment_id: c for c in claim(ctx, "w1", world.mailbox.id)}
    write(ctx, StepRun, held[others].run_id, locked_by="w2")  # taken over meanwhile
    enrollment_control.pause(ctx, paused)
    enrollment_control.unenroll(ctx, ended)
    enrollment_control.pause(ctx, others)
    assert delivery.hand_over(ctx, held[paused], "w1") is HandOver.SKIP
    assert delivery.hand_over(ctx, held[ended], "w1") is HandOver.SKIP
    assert delivery.hand_over(ctx, held[others], "w1") is HandOver.SKIP
    write(ctx, Mailbox, world.mailbox.id, connected=False)
    assert delivery.hand_over(ctx, held[disconnected], "w1") is HandOver.SKIP
    runs = {e: one(ctx, StepRun, held[e].run_id) for e in ids}
    assert (runs[paused].status, runs[paused].locked_by, runs[paused].locked_until) == (
        "paused",
        None,
        None,
    )
    assert (runs[ended].status, runs[ended].locked_by) == ("cancelled", None)
    assert (runs[disconnected].status, runs[disconnected].wait_reason) == (
        "pending",
        "mailbox_disconnected",
    )
    assert (runs[disconnected].locked_by, runs[disconnected].locked_until) == (None, None)
    assert (runs[others].status, runs[others].locked_by) == ("sending", "w2")  # not ours
    assert {one(ctx, Message, c.message_pk).status for c in held.values()} == {"prepared"}
    assert one(ctx, Mailbox, world.mailbox.id).last_handed_at is None


def test_a_reminder_goes_while_its_enrollment_is_paused(ctx, world):
    held, eid = reminder_claim(ctx, world)
    enrollment_control.pause(ctx, eid)
    assert delivery.hand_over(ctx, held, "w1") is HandOver.GO
    message = one(ctx, Message, held.message_pk)
    assert (message.status, message.handed_at) == ("handing", ctx.clock.now())
    assert delivery.hand_over(ctx, held, "w1") is HandOver.SKIP  # handed once only


def test_a_reminder_of_an_ended_enrollment_is_dropped_not_retried(ctx, world):
    held, eid = reminder_claim(ctx, world)
    enrollment_control.unenroll(ctx, eid)
    assert delivery.hand_over(ctx, held, "w1") is HandOver.SKIP
    message = one(ctx, Message, held.message_pk)
    assert (message.status, message.smtp_reply) == (
        "failed",
        "not sent: the mailbox was disconnected or the enrollment ended",
    )


def test_a_reminder_of_a_disconnected_mailbox_is_dropped(ctx, world):
    held, _ = reminder_claim(ctx, world)
    write(ctx, Mailbox, world.mailbox.id, connected=False)
    assert delivery.hand_over(ctx, held, "w1") is HandOver.SKIP
    assert one(ctx, Message, held.message_pk).status == "failed"


# --- recording a send -----------------------------------------------------------------------


def test_a_send_is_recorded_with_its_attempt_the_event_and_the_next_step(ctx, world):
    webhooks.create_webhook(ctx, None, "http://127.0.0.1:9/hook", ["step_sent", "finished"])
    held = handed(ctx, world)
    ctx.clock.advance(timedelta(seconds=3))
    now = ctx.clock.now()
    delivery.record_outcomes(ctx, [(held, SENT)], "w1")
    message = one(ctx, Message, held.message_pk)
    assert (message.status, message.sent_at, message.smtp_reply) == (
        "sent",
        now,
        "250 2.0.0 OK queued",
    )
    run = one(ctx, StepRun, held.run_id)
    assert (run.status, run.completed_at, run.attempts) == ("sent", now, 1)
    assert (run.locked_by, run.locked_until, run.last_error) == (None, None, None)
    assert attempts(ctx) == [(held.message_pk, 1, "sent", 250, "2.0.0 OK queued", now)]
    [event] = rows(ctx, WebhookDelivery)
    assert event.event_type == "step_sent"
    data = event.payload["data"]
    assert {k: data[k] for k in ("enrollment_id", "contact_id", "sequence_id",
                                 "step_position", "message_id")} == {
        "enrollment_id": held.enrollment_id, "contact_id": held.contact_id,
        "sequence_id": world.sequence.id, "step_position": 1, "message_id": held.message_pk,
    }  # fmt: skip
    [done, following] = rows(ctx, StepRun, StepRun.enrollment_id == held.enrollment_id)
    assert done.id == held.run_id
    assert (following.step_position, following.status) == (2, "pending")
    assert following.due_at == now + timedelta(days=3)
    assert one(ctx, Enrollment, held.enrollment_id).state == "active"


def test_the_last_step_sent_finishes_the_enrollment(ctx, world):
    webhooks.create_webhook(ctx, None, "http://127.0.0.1:9/hook", ["finished"])
    held = handed(ctx, world, sequence=world.make_sequence(steps=ONE_EMAIL, name="One"))
    assert held.last_step is True
    delivery.record_outcomes(ctx, [(held, DeliveryResult(DeliveryOutcome.SENT, None, "OK"))], "w1")
    assert one(ctx, Message, held.message_pk).smtp_reply == "OK"  # no code: the reply alone
    enrollment = one(ctx, Enrollment, held.enrollment_id)
    assert (enrollment.state, enrollment.ended_at) == ("finished", ctx.clock.now())
    assert [r.status for r in rows(ctx, StepRun)] == ["sent"]
    assert [d.event_type for d in rows(ctx, WebhookDelivery)] == ["finished"]


def test_hand_over_records_the_finished_emails_in_the_same_commit(ctx, world):
    for c in world.contacts(2):
        enroll_ids(world, [c])
    first, second = claim(ctx, "w1", world.mailbox.id)
    assert delivery.hand_over(ctx, first, "w1") is HandOver.GO
    ctx.clock.advance(timedelta(seconds=6))
    assert delivery.hand_over(ctx, second, "w1", [(first, SENT)]) is HandOver.GO
    assert one(ctx, Message, first.message_pk).status == "sent"
    assert one(ctx, Message, second.message_pk).status == "handing"
    delivery.record_outcomes(ctx, [], "w1")  # nothing to record: nothing changes
    assert one(ctx, Message, second.message_pk).status == "handing"


def test_a_send_of_a_recovered_claim_is_recorded_by_the_slow_path(ctx, world):
    webhooks.create_webhook(ctx, None, "http://127.0.0.1:9/hook", ["step_sent"])
    held = handed(ctx, world, "dead")
    ctx.clock.advance(LEASE * 2)
    from cadenza.services.delivery import recovery

    assert recovery.recover_expired(ctx) == 1  # unknown: recovered too early
    assert one(ctx, Enrollment, held.enrollment_id).needs_attention is True
    now = ctx.clock.now()
    delivery.record_outcomes(ctx, [(held, SENT)], "dead")  # the answer came after all
    message = one(ctx, Message, held.message_pk)
    assert (message.status, message.sent_at, message.smtp_reply) == (
        "sent",
        now,
        "250 2.0.0 OK queued",
    )
    run = one(ctx, StepRun, held.run_id)
    assert (run.status, run.attempts, run.locked_by, run.locked_until) == ("sent", 1, None, None)
    assert one(ctx, Enrollment, held.enrollment_id).needs_attention is False
    assert attempts(ctx) == [(held.message_pk, 1, "sent", 250, "2.0.0 OK queued", now)]
    assert [d.event_type for d in rows(ctx, WebhookDelivery)] == ["step_sent"]
    [_, following] = rows(ctx, StepRun, StepRun.enrollment_id == held.enrollment_id)
    assert following.due_at == now + timedelta(days=3)


def test_an_outcome_for_a_claim_taken_over_is_left_to_the_new_owner(ctx, world):
    held = handed(ctx, world)
    write(ctx, StepRun, held.run_id, locked_by="w2")
    for result in (SENT, BUSY, REFUSED):
        delivery.record_outcomes(ctx, [(held, result)], "w1")
    assert one(ctx, Message, held.message_pk).status == "handing"
    run = one(ctx, StepRun, held.run_id)
    assert (run.status, run.attempts, run.locked_by) == ("sending", 0, "w2")
    assert attempts(ctx) == []
    write(ctx, StepRun, held.run_id, locked_by="w1")
    write(ctx, Message, held.message_pk, status="prepared")  # e.g. taken back
    delivery.record_outcomes(ctx, [(held, BUSY)], "w1")
    assert attempts(ctx) == []


def test_a_busy_server_means_a_retry_later_with_backoff(ctx, world):
    held = handed(ctx, world)
    now = ctx.clock.now()
    delivery.record_outcomes(ctx, [(held, BUSY)], "w1")
    message = one(ctx, Message, held.message_pk)
    assert (message.status, message.smtp_reply) == ("prepared", "451 4.3.0 try later")
    run = one(ctx, StepRun, held.run_id)
    assert (run.status, run.wait_reason, run.last_error, run.attempts) == (
        "pending",
        "retry",
        "451 4.3.0 try later",
        1,
    )
    assert (run.locked_by, run.locked_until) == (None, None)
    assert now + timedelta(seconds=45) <= run.due_at <= now + timedelta(seconds=75)
    assert attempts(ctx) == [(held.message_pk, 1, "transient", 451, "4.3.0 try later", now)]
    assert one(ctx, Enrollment, held.enrollment_id).state == "active"


def test_the_last_allowed_try_that_fails_fails_the_step(ctx, world):
    held = handed(ctx, world)
    write(ctx, StepRun, held.run_id, attempts=MAX_ATTEMPTS - 2)
    delivery.record_outcomes(ctx, [(held, BUSY)], "w1")  # try MAX_ATTEMPTS - 1: retried
    assert one(ctx, StepRun, held.run_id).status == "pending"
    ctx.clock.advance(timedelta(hours=3))
    [again] = claim(ctx, "w1", world.mailbox.id)
    assert delivery.hand_over(ctx, again, "w1") is HandOver.GO
    delivery.record_outcomes(ctx, [(again, BUSY)], "w1")  # try MAX_ATTEMPTS: no more
    run = one(ctx, StepRun, held.run_id)
    assert (run.status, run.attempts, run.last_error) == (
        "failed",
        MAX_ATTEMPTS,
        "451 4.3.0 try later",
    )
    assert one(ctx, Message, held.message_pk).status == "failed"
    enrollment = one(ctx, Enrollment, held.enrollment_id)
    assert (enrollment.state, enrollment.reason, enrollment.needs_attention) == (
        "unenrolled",
        "send_failed",
        True,
    )


def test_a_refusal_fails_the_step_and_ends_the_enrollment(ctx, world):
    held = handed(ctx, world)
    now = ctx.clock.now()
    delivery.record_outcomes(ctx, [(held, REFUSED)], "w1")
    message = one(ctx, Message, held.message_pk)
    assert (message.status, message.smtp_reply) == ("failed", "550 5.1.1 no such user")
    run = one(ctx, StepRun, held.run_id)
    assert (run.status, run.attempts, run.last_error, run.locked_by) == (
        "failed",
        1,
        "550 5.1.1 no such user",
        None,
    )
    enrollment = one(ctx, Enrollment, held.enrollment_id)
    assert (enrollment.state, enrollment.reason, enrollment.needs_attention) == (
        "unenrolled",
        "send_failed",
        True,
    )
    assert attempts(ctx) == [(held.message_pk, 1, "permanent", 550, "5.1.1 no such user", now)]


def test_no_answer_is_unknown_and_flags_the_enrollment(ctx, world):
    held = handed(ctx, world)
    delivery.record_outcomes(ctx, [(held, NO_ANSWER)], "w1")
    message = one(ctx, Message, held.message_pk)
    assert (message.status, message.smtp_reply) == ("unknown", "no answer after DATA")
    run = one(ctx, StepRun, held.run_id)
    assert (run.status, run.last_error, run.attempts, run.locked_by) == (
        "unknown",
        "no answer after DATA",
        1,
        None,
    )
    enrollment = one(ctx, Enrollment, held.enrollment_id)
    assert (enrollment.state, enrollment.needs_attention) == ("active", True)


def test_bad_credentials_disconnect_the_mailbox_and_the_step_waits(ctx, world):
    held = handed(ctx, world)
    delivery.record_outcomes(ctx, [(held, BAD_LOGIN)], "w1")
    mailbox = one(ctx, Mailbox, world.mailbox.id)
    assert (mailbox.connected, mailbox.disconnected_reason) == (
        False,
        "535 5.7.8 credentials invalid",
    )
    assert one(ctx, Message, held.message_pk).status == "prepared"
    run = one(ctx, StepRun, held.run_id)
    assert (run.status, run.wait_reason, run.last_error, run.attempts, run.locked_by) == (
        "pending",
        "mailbox_disconnected",
        "535 5.7.8 credentials invalid",
        0,
        None,
    )


# --- reminders ------------------------------------------------------------------------------


def test_a_reminder_sent_is_recorded_once(ctx, world):
    held, _ = reminder_claim(ctx, world)
    assert delivery.hand_over(ctx, held, "w1") is HandOver.GO
    ctx.clock.advance(timedelta(seconds=2))
    now = ctx.clock.now()
    delivery.record_outcomes(ctx, [(held, SENT)], "w1")
    message = one(ctx, Message, held.message_pk)
    assert (message.status, message.sent_at, message.smtp_reply) == (
        "sent",
        now,
        "250 2.0.0 OK queued",
    )
    assert attempts(ctx) == [(held.message_pk, 1, "sent", 250, "2.0.0 OK queued", now)]
    delivery.record_outcomes(ctx, [(held, SENT)], "w1")  # no longer handing: nothing more
    assert len(attempts(ctx)) == 1


@pytest.mark.parametrize(
    ("result", "status", "connected"),
    [
        (NO_ANSWER, "unknown", True),
        (BUSY, "failed", True),  # at most once: not retried
        (REFUSED, "failed", True),
        (BAD_LOGIN, "failed", False),
    ],
)
def test_a_reminder_not_sent_is_not_tried_again(ctx, world, result, status, connected):
    held, _ = reminder_claim(ctx, world)
    assert delivery.hand_over(ctx, held, "w1") is HandOver.GO
    delivery.record_outcomes(ctx, [(held, result)], "w1")
    message = one(ctx, Message, held.message_pk)
    reply = f"{result.code or ''} {result.reply}".strip()
    assert (message.status, message.sent_at, message.smtp_reply) == (status, None, reply)
    mailbox = one(ctx, Mailbox, world.mailbox.id)
    assert mailbox.connected is connected
    assert mailbox.disconnected_reason == (None if connected else reply)
    assert [a.attempt for a in rows(ctx, DeliveryAttempt)] == [1]
    [task] = rows(ctx, Task)
    assert task.reminded_at is not None


# --- the parts ------------------------------------------------------------------------------


def test_a_reminder_is_not_a_sent_step(ctx, world):
    held, _ = reminder_claim(ctx, world)
    with pytest.raises(ValueError, match=f"message {held.message_pk} is a task reminder"):
        SentStep.of(held)


def test_a_step_recorded_from_its_rows_knows_whether_it_was_the_last(ctx, world):
    held = handed(ctx, world)
    with Session(ctx.db.engine) as session:  # its changes of the run are never kept
        run = session.get(StepRun, held.run_id)
        enrollment = session.get(Enrollment, held.enrollment_id)
        message = session.get(Message, held.message_pk)
        sent, claimed = SentStep.of_rows(run, enrollment, message), SentStep.of(held)
        assert (sent.run_id, sent.message_pk, sent.step_position, sent.last_step) == (
            claimed.run_id, claimed.message_pk, 1, False,
        )  # fmt: skip
        assert sent.enrollment.items() >= claimed.enrollment.items()
        run.step_position = len(enrollment.steps_snapshot)
        assert SentStep.of_rows(run, enrollment, message).last_step is True
        run.step_position -= 1
        assert SentStep.of_rows(run, enrollment, message).last_step is False


def test_recording_a_step_without_a_try_or_a_marked_message(ctx, world):
    held = handed(ctx, world)
    at = ctx.clock.now() + timedelta(minutes=7)
    with ctx.db.engine.begin() as connection:
        tries = record_step_sent(connection, SentStep.of(held), at, tried=False)
    assert tries == 0
    message = one(ctx, Message, held.message_pk)
    assert (message.status, message.sent_at) == ("sent", at)
    run = one(ctx, StepRun, held.run_id)
    assert (run.status, run.completed_at, run.attempts) == ("sent", at, 0)
    [_, following] = rows(ctx, StepRun, StepRun.enrollment_id == held.enrollment_id)
    assert following.due_at == at + timedelta(days=3)


def test_backoff_doubles_from_a_minute_up_to_two_hours_with_a_quarter_of_jitter():
    for attempt, base in ((1, 60), (2, 120), (3, 240), (7, 3840), (8, 7200), (12, 7200)):
        delays = [delivery.backoff(attempt).total_seconds() for _ in range(400)]
        assert all(0.75 * base <= d <= 1.25 * base for d in delays), attempt
        assert min(delays) < 0.8 * base and max(delays) > 1.2 * base, attempt
