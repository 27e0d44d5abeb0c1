"""Faults pause, they do not destroy (issue 14 §4): a refusal of the sending mailbox
itself, or a run of permanent refusals of different recipients, pauses the mailbox with
the reason and leaves every enrollment waiting; a refusal of one recipient still fails
that step alone. Against an SMTP server scripted to answer each way, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cadenza.domain.enums import WebhookEvent
from cadenza.services.accounts.mailboxes import get_mailbox, reconnect_mailbox
from cadenza.services.delivery.handover import REFUSALS_IN_A_ROW, REFUSALS_WITHIN
from cadenza.services.events_out import webhooks
from cadenza.store.models import DeliveryAttempt, Enrollment, StepRun, WebhookDelivery
from tests.conftest import enroll_ids
from tests.support.smtp_sink import SmtpSink

ONE_STEP = [{"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"}]


@pytest.fixture
def sink():
    with SmtpSink() as server:
        yield server


@pytest.fixture
def smtp_world(world, sink):
    return world.send_over_smtp(
        sink.host, sink.port, steps=ONE_STEP, name="One step", per_minute_limit=60
    )


def _states(ctx):
    """(enrollment state, reason, step status, wait reason) per enrollment, in id order."""
    with ctx.db.read() as session:
        rows = session.execute(
            select(Enrollment.state, Enrollment.reason, StepRun.status, StepRun.wait_reason)
            .join(StepRun, StepRun.enrollment_id == Enrollment.id)
            .order_by(Enrollment.id)
        )
        return [tuple(str(v) if v is not None else None for v in row) for row in rows]


WAITING = ("active", None, "pending", "mailbox_disconnected")
SENT = ("finished", None, "sent", None)
FAILED = ("unenrolled", "send_failed", "failed", None)


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("MAIL", "550 5.7.1 Sender address rejected: not owned by user rep@corp.example"),
        ("RCPT", "554 5.7.1 <c0@corp.example>: Relay access denied"),
        ("DATA", "550 5.7.26 Unauthenticated email from corp.example is not accepted"),
    ],
)
def test_a_refusal_of_the_mailbox_pauses_it_and_every_enrollment_waits(
    ctx, smtp_world, sink, worker, command, reply
):
    webhook, _ = webhooks.create_webhook(
        ctx, None, "https://hooks.corp.example/cadenza", [WebhookEvent.MAILBOX_DISCONNECTED]
    )
    sink.fail_next(command, reply)
    enroll_ids(smtp_world, smtp_world.contacts(3))
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    mailbox = get_mailbox(ctx, smtp_world.mailbox.id)
    assert not mailbox.connected and reply.split(" ", 1)[1] in mailbox.disconnected_reason
    assert _states(ctx) == [WAITING] * 3 and sink.message_ids() == []
    # Reported once, however many of its emails were refused or waited.
    with ctx.db.read() as session:
        deliveries = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id)
        ).all()
    assert [d.event_type for d in deliveries] == ["mailbox.disconnected"]
    assert deliveries[0].payload["data"]["mailbox_id"] == mailbox.id
    # Fixed and reconnected: all three go, none was lost or failed on the way.
    reconnect_mailbox(ctx, mailbox.id)
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    assert _states(ctx) == [SENT] * 3 and len(sink.message_ids()) == 3


def test_a_refused_recipient_fails_only_its_own_step(ctx, smtp_world, sink, worker):
    sink.fail_next("RCPT", "550 5.1.1 <c0@corp.example>: Recipient address rejected")
    enroll_ids(smtp_world, smtp_world.contacts(3))
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    assert get_mailbox(ctx, smtp_world.mailbox.id).connected
    assert _states(ctx) == [FAILED, SENT, SENT]


def test_a_run_of_refusals_of_different_recipients_pauses_the_mailbox(
    ctx, smtp_world, sink, worker
):
    # A relay that refuses everything in words no rule reads.
    sink.fail_next("DATA", "550 Requested action aborted: error in processing", times=10)
    enroll_ids(smtp_world, smtp_world.contacts(REFUSALS_IN_A_ROW + 2))
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    mailbox = get_mailbox(ctx, smtp_world.mailbox.id)
    assert not mailbox.connected
    assert f"{REFUSALS_IN_A_ROW} permanent refusals in a row" in mailbox.disconnected_reason
    # The first ones failed before the pattern could be seen (a person may retry them);
    # the one that showed it and every later one wait.
    first = REFUSALS_IN_A_ROW - 1
    assert _states(ctx) == [FAILED] * first + [WAITING] * 3


def test_refusals_spread_over_more_than_a_day_do_not_pause_it(ctx, smtp_world, sink, worker):
    sink.fail_next("DATA", "550 error in processing", times=REFUSALS_IN_A_ROW - 1)
    enroll_ids(smtp_world, smtp_world.contacts(REFUSALS_IN_A_ROW - 1))
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    ctx.clock.advance(timedelta(days=2))  # the earlier refusals are a day old and more
    sink.fail_next("DATA", "550 error in processing")
    enroll_ids(smtp_world, smtp_world.contacts(1, prefix="later"))
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    assert get_mailbox(ctx, smtp_world.mailbox.id).connected
    assert _states(ctx) == [FAILED] * REFUSALS_IN_A_ROW


def _attempt_times(ctx):
    with ctx.db.read() as session:
        return list(session.scalars(select(DeliveryAttempt.at).order_by(DeliveryAttempt.id)))


def test_a_refusal_exactly_a_day_old_is_out_of_the_run(ctx, smtp_world, sink, worker):
    sink.fail_next("DATA", "550 error in processing", times=REFUSALS_IN_A_ROW)
    enroll_ids(smtp_world, smtp_world.contacts(REFUSALS_IN_A_ROW - 1))
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    first, _ = _attempt_times(ctx)
    ctx.clock.set(first + REFUSALS_WITHIN)  # the first refusal is now exactly a day old
    enroll_ids(smtp_world, smtp_world.contacts(1, prefix="later"))
    worker.tick()
    assert _attempt_times(ctx)[-1] == first + REFUSALS_WITHIN
    assert get_mailbox(ctx, smtp_world.mailbox.id).connected


def test_a_success_in_between_breaks_the_run(ctx, smtp_world, sink, worker):
    # refused, accepted, refused, refused: never three refusals in a row.
    sink.fail_next("DATA", "550 error in processing")
    enroll_ids(smtp_world, smtp_world.contacts(2))
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    sink.fail_next("DATA", "550 error in processing", times=2)
    enroll_ids(smtp_world, smtp_world.contacts(2, prefix="later"))
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    assert get_mailbox(ctx, smtp_world.mailbox.id).connected
    assert _states(ctx) == [FAILED, SENT, FAILED, FAILED]


def test_a_success_before_the_run_does_not_hide_it(ctx, smtp_world, sink, worker):
    enroll_ids(smtp_world, smtp_world.contacts(1))  # accepted first
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    sink.fail_next("DATA", "550 error in processing", times=REFUSALS_IN_A_ROW)
    enroll_ids(smtp_world, smtp_world.contacts(REFUSALS_IN_A_ROW, prefix="later"))
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    assert not get_mailbox(ctx, smtp_world.mailbox.id).connected
    assert _states(ctx) == [SENT, *[FAILED] * (REFUSALS_IN_A_ROW - 1), WAITING]


def test_refusals_from_another_mailbox_are_not_counted(ctx, smtp_world, sink, worker):
    from cadenza.services.accounts.mailboxes import create_mailbox

    other = create_mailbox(
        ctx, smtp_world.user.id, "team@corp.example", transport="smtp", smtp_host=sink.host,
        smtp_port=sink.port, smtp_security="none", per_minute_limit=60,
    )  # fmt: skip
    sink.fail_next("DATA", "550 error in processing", times=REFUSALS_IN_A_ROW)
    enroll_ids(smtp_world, smtp_world.contacts(REFUSALS_IN_A_ROW - 1), mailbox_id=other.id)
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    enroll_ids(smtp_world, smtp_world.contacts(1, prefix="mine"), mailbox_id=smtp_world.mailbox.id)
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    assert get_mailbox(ctx, smtp_world.mailbox.id).connected
    assert get_mailbox(ctx, other.id).connected  # its own two: not yet a run
