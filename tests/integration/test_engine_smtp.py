"""The engine against a real SMTP server on loopback: retries, failures, auth, unknowns."""

from datetime import timedelta
from email.parser import BytesParser
from email.policy import default

import pytest

from cadenza.services.accounts.mailboxes import reconnect_mailbox, update_mailbox
from cadenza.store.models import DeliveryAttempt, Enrollment, Mailbox, Message, StepRun
from tests.conftest import enroll_ids
from tests.support.rows import rows
from tests.support.smtp_sink import SmtpSink

ONE_STEP = [{"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"}]


@pytest.fixture
def sink():
    with SmtpSink(auth={"rep": "s3cret-pass"}) as server:
        yield server


@pytest.fixture
def smtp_world(world, sink):
    """The world's user sends from a real SMTP mailbox; step 1 only."""
    world.send_over_smtp(
        sink.host,
        sink.port,
        steps=ONE_STEP,
        name="One step",
        smtp_username="rep",
        smtp_password="s3cret-pass",
    )
    return world


def test_sends_each_message_once_over_one_connection(ctx, smtp_world, sink, worker):
    enroll_ids(smtp_world, smtp_world.contacts(5))
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    stored = rows(ctx, Message)
    assert [m.status for m in stored] == ["sent"] * 5
    assert sorted(sink.message_ids()) == sorted(m.message_id for m in stored)
    assert sink.connections == 1
    assert all(m.smtp_reply.startswith("250") for m in stored)


def test_transient_replies_retry_with_exponential_backoff_then_send(ctx, smtp_world, sink, worker):
    sink.fail_next("MAIL", "451 4.7.1 greylisted, try later", times=2)
    start = ctx.clock.now()
    enroll_ids(smtp_world, [smtp_world.contact()])
    worker.run_until(start + timedelta(hours=1))
    attempts = rows(ctx, DeliveryAttempt)
    assert [a.outcome for a in attempts] == ["transient", "transient", "sent"]
    assert "greylisted" in attempts[0].reply and attempts[0].code == 451
    first_gap = attempts[1].at - attempts[0].at
    second_gap = attempts[2].at - attempts[1].at
    assert timedelta(seconds=45) <= first_gap <= timedelta(seconds=75)
    assert timedelta(seconds=90) <= second_gap <= timedelta(seconds=150)
    assert len(sink.message_ids()) == 1
    [message] = rows(ctx, Message)
    assert message.status == "sent" and message.message_id == sink.message_ids()[0]


def test_transient_failures_give_up_after_the_limit(ctx, smtp_world, sink, worker):
    sink.fail_next("RCPT", "421 4.3.2 shutting down", times=10)
    [eid] = enroll_ids(smtp_world, [smtp_world.contact()])
    worker.run_until(ctx.clock.now() + timedelta(days=1))
    assert [a.outcome for a in rows(ctx, DeliveryAttempt)] == ["transient"] * 5
    [run] = rows(ctx, StepRun)
    assert run.status == "failed" and "421" in run.last_error
    [enrollment] = rows(ctx, Enrollment)
    assert (enrollment.id, enrollment.reason) == (eid, "send_failed")
    assert sink.message_ids() == []


def test_permanent_reply_fails_the_step_at_once_and_flags_the_enrollment(
    ctx, smtp_world, sink, worker
):
    sink.fail_next("RCPT", "550 5.1.1 no such user")
    enroll_ids(smtp_world, [smtp_world.contact()])
    worker.run_until(ctx.clock.now() + timedelta(days=1))
    [message] = rows(ctx, Message)
    assert message.status == "failed" and message.smtp_reply == "550 5.1.1 no such user"
    [enrollment] = rows(ctx, Enrollment)
    assert (enrollment.state, enrollment.reason, enrollment.needs_attention) == (
        "unenrolled",
        "send_failed",
        True,
    )
    assert len(rows(ctx, DeliveryAttempt)) == 1


def test_auth_failure_disconnects_the_mailbox_and_steps_wait_until_reconnected(
    ctx, smtp_world, sink, worker
):
    sink.fail_next("AUTH", "535 5.7.8 authentication credentials invalid")
    enroll_ids(smtp_world, smtp_world.contacts(3))
    worker.run_until(ctx.clock.now() + timedelta(days=2))
    [mailbox] = rows(ctx, Mailbox)
    assert mailbox.connected is False and "535" in mailbox.disconnected_reason
    assert "s3cret-pass" not in mailbox.disconnected_reason
    waiting = rows(ctx, StepRun)
    assert {(r.status, r.wait_reason) for r in waiting} == {("pending", "mailbox_disconnected")}
    assert sink.message_ids() == []
    reconnect_mailbox(ctx, mailbox.id)
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    assert len(sink.message_ids()) == 3
    assert {r.status for r in rows(ctx, StepRun)} == {"sent"}


def test_connection_lost_after_the_message_is_unknown_and_never_resent(
    ctx, smtp_world, sink, worker
):
    sink.drop_next("DATA")
    enroll_ids(smtp_world, smtp_world.contacts(2))
    worker.run_until(ctx.clock.now() + timedelta(days=3))
    statuses = [m.status for m in rows(ctx, Message)]
    assert sorted(statuses) == ["sent", "unknown"]
    assert len(sink.message_ids()) == 1  # the dropped one was not kept by the server
    unknown = [r for r in rows(ctx, StepRun) if r.status == "unknown"]
    assert len(unknown) == 1 and len(rows(ctx, DeliveryAttempt)) == 2


def test_a_reused_connection_closed_by_the_server_is_reopened(ctx, smtp_world, sink, worker):
    enroll_ids(smtp_world, [smtp_world.contact("a@x.example")])
    worker.run_until(ctx.clock.now() + timedelta(minutes=1))
    sink.close_connections()
    enroll_ids(smtp_world, [smtp_world.contact("b@x.example")])
    worker.run_until(ctx.clock.now() + timedelta(minutes=1))
    assert [m.status for m in rows(ctx, Message)] == ["sent", "sent"]
    assert len(sink.message_ids()) == 2 and sink.connections == 2


def test_new_settings_open_a_new_connection_and_the_same_keep_it(ctx, smtp_world, sink, worker):
    """The worker compares the mailbox's settings value: a session opened with the old
    password is never reused once the mailbox has a new one."""
    enroll_ids(smtp_world, [smtp_world.contact("a@x.example")])
    worker.run_until(ctx.clock.now() + timedelta(minutes=1))
    update_mailbox(ctx, smtp_world.mailbox.id, {"from_name": "R. Rep"})  # not a setting
    enroll_ids(smtp_world, [smtp_world.contact("b@x.example")])
    worker.run_until(ctx.clock.now() + timedelta(minutes=1))
    assert sink.connections == 1
    sink.auth["rep"] = "n3w-secret-pass"
    update_mailbox(ctx, smtp_world.mailbox.id, {"smtp_password": "n3w-secret-pass"})
    enroll_ids(smtp_world, [smtp_world.contact("c@x.example")])
    worker.run_until(ctx.clock.now() + timedelta(minutes=1))
    assert [m.status for m in rows(ctx, Message)] == ["sent"] * 3
    assert len(sink.message_ids()) == 3 and sink.connections == 2


def test_task_reminders_email_the_owner_once(ctx, smtp_world, sink, worker):
    sequence = smtp_world.make_sequence(
        steps=[{"type": "task", "task_title": "Call {{ contact.firstname }}",
                "task_notes": "Ask about <pricing>"}],
        settings={"task_reminders": True},
        name="Reminded",
    )  # fmt: skip
    enroll_ids(smtp_world, [smtp_world.contact()], sequence)
    worker.run_until(ctx.clock.now() + timedelta(days=2))
    [reminder] = sink.messages
    assert reminder.rcpt_tos == ("rep@example.com",)
    parsed = BytesParser(policy=default).parsebytes(reminder.data)
    assert parsed["Subject"] == "Task due: Call Ann"
    assert "<p>Ask about &lt;pricing&gt;</p>" in parsed.get_body(("html",)).get_content()
