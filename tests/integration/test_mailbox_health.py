"""A mailbox's health (issue 14 §3): every figure read back from what the engine did
against a real SMTP server, on both databases; the same in the API, the page and the CLI."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cadenza.domain.enums import EventKind, StepWaitReason
from cadenza.services.accounts.mailboxes import update_mailbox
from cadenza.services.analytics.mailbox_health import mailbox_health
from cadenza.services.signals.effects import Signal, record_signal
from cadenza.services.signals.inbox_cursors import Cursor, record_error, save_cursor
from cadenza.store.models import Message
from tests.conftest import MISSING_ID, Api, assert_error, enroll_ids
from tests.support.smtp_sink import SmtpSink

ONE_STEP = [{"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"}]


@pytest.fixture
def sink():
    with SmtpSink(auth={"rep": "s3cret-pass"}) as server:
        yield server


@pytest.fixture
def smtp_world(world, sink):
    """The world's user sends from a real SMTP mailbox allowed one email a minute."""
    world.send_over_smtp(
        sink.host,
        sink.port,
        steps=ONE_STEP,
        name="One step",
        smtp_username="rep",
        smtp_password="s3cret-pass",
        per_minute_limit=1,
    )
    return world


def test_a_new_mailbox_is_healthy_and_says_it_cannot_detect_replies(ctx, world):
    health = mailbox_health(ctx, world.mailbox.id)
    assert health.mailbox.connected and not health.detects_replies
    assert not health.misses_replies  # a capture mailbox: nobody can reply to it
    assert (health.last_sent_at, health.last_error, health.inbox) == (None, None, [])
    assert (health.sent_last_minute, health.sent_last_24h, health.due_now) == (0, 0, 0)
    assert (health.waiting, health.needs_review) == ({}, 0)
    assert health.signals == {"reply": 0, "bounce": 0, "auto_reply": 0}
    assert health.checked_at == ctx.clock.now()


def test_sends_errors_limits_and_signals_are_read_from_what_the_engine_did(
    ctx, smtp_world, sink, worker
):
    sink.fail_next("RCPT", "550 5.1.1 no such user here")
    start = ctx.clock.now()
    ids = enroll_ids(smtp_world, smtp_world.contacts(4))
    worker.tick()  # one minute's room: the first email fails for its recipient alone
    worker.run_until(start + timedelta(seconds=90))  # the next one goes a minute later

    health = mailbox_health(ctx, smtp_world.mailbox.id)
    assert health.misses_replies and not health.detects_replies
    [sent] = [m for m in _messages(ctx) if m.status == "sent"]
    assert health.last_sent_at == sent.sent_at and len(sink.message_ids()) == 1
    assert health.last_error is not None
    assert (health.last_error.outcome, health.last_error.code) == ("permanent", 550)
    assert "no such user" in health.last_error.reply
    assert health.sent_last_24h == 1  # the failed one never counted against the day
    assert health.sent_last_minute == 1
    # Two are left, held back by the per-minute limit, not due with nothing in the way.
    assert health.waiting == {StepWaitReason.RATE_LIMIT: 2} and health.due_now == 0

    ctx.clock.advance(timedelta(minutes=2))
    assert mailbox_health(ctx, smtp_world.mailbox.id).sent_last_minute == 0

    record_signal(ctx, Signal(EventKind.REPLY, "reply-1", message_pk=sent.id))
    assert mailbox_health(ctx, smtp_world.mailbox.id).signals["reply"] == 1
    ctx.clock.advance(timedelta(days=8))  # older than the window: no longer counted
    later = mailbox_health(ctx, smtp_world.mailbox.id)
    assert later.signals["reply"] == 0 and later.sent_last_24h == 0
    assert len(ids) == 4


def test_inbox_polls_and_their_errors_are_reported_per_folder(ctx, world):
    update_mailbox(ctx, world.mailbox.id, {"imap_host": "127.0.0.1", "imap_port": 993})
    save_cursor(ctx, world.mailbox.id, "INBOX", Cursor(uidvalidity=7, last_uid=3))
    ctx.clock.advance(timedelta(minutes=1))
    save_cursor(ctx, world.mailbox.id, "Archive", Cursor(uidvalidity=7, last_uid=3))
    record_error(ctx, world.mailbox.id, "Archive", "LOGIN failed")

    health = mailbox_health(ctx, world.mailbox.id)
    assert health.detects_replies and not health.misses_replies
    assert [(f.folder, f.last_error) for f in health.inbox] == [
        ("Archive", "LOGIN failed"),
        ("INBOX", None),
    ]
    assert health.inbox[0].polled_at == ctx.clock.now()
    assert health.inbox[1].polled_at == ctx.clock.now() - timedelta(minutes=1)


def test_a_disconnected_mailbox_says_why_and_its_emails_wait_for_that_reason(
    ctx, smtp_world, sink, worker
):
    sink.fail_next("AUTH", "535 5.7.8 credentials rejected")
    enroll_ids(smtp_world, smtp_world.contacts(2))
    worker.tick()
    health = mailbox_health(ctx, smtp_world.mailbox.id)
    assert not health.mailbox.connected and "535" in health.mailbox.disconnected_reason
    assert health.waiting.get(StepWaitReason.MAILBOX_DISCONNECTED) == 2
    assert health.last_error is not None and health.last_error.outcome == "auth_failed"


def test_over_http_members_see_only_their_own(api: Api, world):
    response = api.get(f"/mailboxes/{world.mailbox.id}/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mailbox"]["id"] == world.mailbox.id and body["detects_replies"] is False
    assert (body["per_minute_limit"], body["daily_limit"]) == (10, 1000)
    assert body["signals"] == {"reply": 0, "bounce": 0, "auto_reply": 0}
    assert "smtp_password" not in str(body)
    assert api.get(f"/mailboxes/{world.mailbox.id}/health", role="admin").status_code == 200
    assert_error(
        api.get(f"/mailboxes/{world.mailbox.id}/health", role="other"), 404, "mailbox_not_found"
    )
    assert_error(api.get(f"/mailboxes/{MISSING_ID}/health"), 404, "mailbox_not_found")
    assert_error(api.get("/mailboxes/0/health"), 422, "validation_error")
    anonymous = api.get(f"/mailboxes/{world.mailbox.id}/health", role=None)
    assert_error(anonymous, 401, "unauthenticated")


def test_the_cli_prints_the_same_figures(cli, ctx, world):
    output = cli("mailboxes", "health", world.mailbox.id, "--as", "rep@example.com")
    assert "NOT detected" in output and "0 of 10" in output and "0 of 1000" in output
    refused = cli("mailboxes", "health", MISSING_ID, "--as", "rep@example.com", ok=False)
    assert "does not exist" in refused


def _messages(ctx):
    with ctx.db.read() as session:
        return list(session.query(Message).order_by(Message.id))
