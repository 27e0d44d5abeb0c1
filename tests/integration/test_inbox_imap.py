"""The inbox poller against a real dovecot: real-shaped replies, out-of-office messages
and bounces are acted on; unrelated mail is left exactly as it was (still unread)."""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cadenza.cli import app
from cadenza.domain.clock import SystemClock
from cadenza.domain.enums import EnrollmentState, StepRunStatus
from cadenza.engine.inbox import MAX_BYTES, poll_mailbox
from cadenza.engine.inbox_poller import InboxPoller
from cadenza.services.accounts.mailboxes import get_mailbox, update_mailbox
from cadenza.services.context import Context
from cadenza.services.signals.inbox_cursors import Cursor, get_cursor, save_cursor
from cadenza.store.models import Contact, Message, StepRun
from tests.support.dovecot import Dovecot
from tests.support.inbound_mail import inbound_mail
from tests.support.signals import enrollment, events, send_first_emails

REPLIES = {"ann": "reply_gmail", "bob": "reply_outlook", "cara": "reply_new_thread"}
AUTO_REPLIES = {
    "dan": ("ooo_en", (2026, 3, 16)),
    "elena": ("ooo_it", (2026, 3, 10)),
    "frank": ("ooo_de", (2026, 3, 23)),
    "hugo": ("ooo_no_date", None),
}
ACCOUNT_NUMBERS = itertools.count(1)
# Names no message we sent (no In-Reply-To): recorded, shown, but it pauses nothing.
UNREFERENCED_AUTO_REPLIES = {"gaelle": "ooo_fr"}
HARD_BOUNCES = {
    "ian": "dsn_postfix",
    "jo": "dsn_exim",
    "kim": "dsn_gmail",
    "lee": "dsn_exchange",
}


@pytest.fixture(scope="session")
def dovecot_server():
    """One dovecot per session (per xdist worker): starting one costs ~2 s."""
    with Dovecot() as server:
        yield server


@pytest.fixture
def dovecot(dovecot_server):
    """A fresh IMAP user with an empty INBOX on the shared server, for this test alone."""
    user = f"rep-{next(ACCOUNT_NUMBERS)}@example.com"
    return dovecot_server.add_account(user, f"imap-pw-{secrets.token_hex(4)}")


@pytest.fixture
def poller(ctx, world, dovecot):
    update_mailbox(
        ctx,
        world.mailbox.id,
        {
            "imap_host": dovecot.host,
            "imap_port": dovecot.port,
            "imap_security": "none",
            "imap_username": dovecot.user,
            "imap_password": dovecot.password,
        },
    )
    return InboxPoller(ctx)


def deliver(dovecot, ctx, name, **values):
    dovecot.append(inbound_mail(name, **values), msg_time=ctx.clock.now())


def deliver_about(dovecot, ctx, fixture, sent_row):
    contact, _, message = sent_row
    deliver(
        dovecot,
        ctx,
        fixture,
        contact=contact.email,
        message_id=message.message_id,
        subject=message.subject,
    )


def test_replies_auto_replies_and_bounces_are_acted_on_and_nothing_is_marked_read(
    ctx, world, worker, dovecot, poller
):
    names = [*REPLIES, *AUTO_REPLIES, *UNREFERENCED_AUTO_REPLIES, *HARD_BOUNCES, "max"]
    sent = send_first_emails(ctx, world, worker, names)
    world.contact("pat@corp.example", firstname="Pat")  # a contact, but not enrolled
    fixtures = {**REPLIES, **{n: f for n, (f, _) in AUTO_REPLIES.items()}, **HARD_BOUNCES}
    fixtures |= UNREFERENCED_AUTO_REPLIES
    for name, fixture in fixtures.items():
        deliver_about(dovecot, ctx, fixture, sent[name])
    deliver_about(dovecot, ctx, "dsn_delayed", sent["max"])
    deliver(dovecot, ctx, "unrelated_newsletter")
    deliver(dovecot, ctx, "unrelated_colleague", contact="pat@corp.example")
    ctx.clock.advance(timedelta(hours=1))

    [result] = poller.poll_once()

    assert result.error is None
    assert result.fetched == len(fixtures) + 3
    assert result.kinds == {
        "reply": 3, "auto_reply": 5, "bounce": 4, "soft_bounce": 1, "unrelated": 2
    }  # fmt: skip
    for name in REPLIES:
        row = enrollment(ctx, sent[name][1])
        assert (row.state, row.reason) == ("unenrolled", "replied"), name
        [event] = [e for e in events(ctx, "reply") if e.id == row.cause_event_id]
        assert event.contact_id == sent[name][0].id
        expected = "sender" if name == "cara" else "message_id"  # Cara wrote a new email
        assert event.data["matched_by"] == expected
        with ctx.db.read() as session:
            runs = session.scalars(select(StepRun).where(StepRun.enrollment_id == row.id))
            assert {r.status for r in runs} <= {"sent", "cancelled"}
    for name, (_, back) in AUTO_REPLIES.items():
        row = enrollment(ctx, sent[name][1])
        assert row.state == "paused" and row.reason is None, name
        if back is None:  # the sequence's default pause: 7 days from now
            assert row.resume_at == ctx.clock.now() + timedelta(days=7)
        else:  # the start of the return day, in the contact's zone
            local = datetime(*back, tzinfo=ZoneInfo(row.timezone))
            assert row.resume_at == local.astimezone(UTC), name
        assert row.cause_event_id in {e.id for e in events(ctx, "auto_reply")}
    for name in UNREFERENCED_AUTO_REPLIES:
        row = enrollment(ctx, sent[name][1])
        assert row.state == "active" and row.resume_at is None, name
        [event] = [e for e in events(ctx, "auto_reply") if e.enrollment_id == row.id]
        assert event.data["unverified"] and event.contact_id == sent[name][0].id
    with ctx.db.read() as session:
        for name in HARD_BOUNCES:
            contact, enrollment_id, message = sent[name]
            row = enrollment(ctx, enrollment_id)
            assert (row.state, row.reason) == ("unenrolled", "bounced"), name
            assert session.get(Contact, contact.id).bounced_at == ctx.clock.now()
            assert session.get(Message, message.id).bounced_at == ctx.clock.now(), name
        soft = enrollment(ctx, sent["max"][1])
        assert soft.state == "active" and session.get(Contact, sent["max"][0].id).bounced_at is None
    [delayed] = [e for e in events(ctx, "bounce") if e.data["hard"] is False]
    assert delayed.data["status"] == "4.4.1" and delayed.contact_id == sent["max"][0].id
    assert len(events(ctx)) == len(fixtures) + 1  # unrelated mail is not recorded

    flags = dovecot.flags()
    assert len(flags) == len(fixtures) + 3
    assert all(b"\\Seen" not in f and b"\\Deleted" not in f for f in flags.values()), flags

    # Nothing new: the next poll reads nothing and changes nothing.
    [again] = poller.poll_once()
    assert again.fetched == 0 and len(events(ctx)) == len(fixtures) + 1


def test_the_cursor_reads_only_new_mail_and_restarts_when_uidvalidity_changes(
    ctx, world, worker, dovecot, poller
):
    sent = send_first_emails(ctx, world, worker, ["ann", "bob"])
    old = inbound_mail("reply_gmail", contact="ann@corp.example", message_id="<x@y.example>")
    dovecot.append(old, msg_time=ctx.clock.now() - timedelta(days=30))  # before we looked
    [first] = poller.poll_once()
    assert first.fetched == 0 and events(ctx) == []
    cursor = get_cursor(ctx, world.mailbox.id, "INBOX")
    assert cursor.last_uid == 1  # starts after what was there

    deliver_about(dovecot, ctx, "reply_gmail", sent["ann"])
    [second] = poller.poll_once()
    assert second.kinds == {"reply": 1}
    assert get_cursor(ctx, world.mailbox.id, "INBOX") == Cursor(cursor.uidvalidity, 2)

    deliver_about(dovecot, ctx, "reply_outlook", sent["bob"])
    save_cursor(ctx, world.mailbox.id, "INBOX", Cursor(cursor.uidvalidity + 1, 99))
    [third] = poller.poll_once()  # renumbered: read again from the look-back window
    assert third.fetched == 2 and third.kinds == {"reply": 2}
    assert get_cursor(ctx, world.mailbox.id, "INBOX") == Cursor(cursor.uidvalidity, 3)
    kept = events(ctx, "reply")
    assert len(kept) == 2  # Ann's reply, read twice, is one event
    assert enrollment(ctx, sent["bob"][1]).cause_event_id == kept[1].id


def test_out_of_office_pause_ends_on_the_return_day(ctx, world, worker, dovecot, poller):
    sent = send_first_emails(ctx, world, worker, ["dan"])
    deliver_about(dovecot, ctx, "ooo_en", sent["dan"])
    poller.poll_once()
    paused = enrollment(ctx, sent["dan"][1])
    assert paused.state == "paused"
    with ctx.db.read() as session:
        [waiting] = session.scalars(
            select(StepRun).where(StepRun.enrollment_id == paused.id, StepRun.status == "paused")
        )

    # The pause ends on the worker's tick alone: the poller reads mail, nothing timed.
    ctx.clock.set(paused.resume_at - timedelta(minutes=1))
    poller.poll_once()
    assert enrollment(ctx, paused.id).state == "paused"
    assert worker.next_wakeup() == paused.resume_at  # the worker wakes up for it
    worker.run_until(paused.resume_at)
    assert ctx.clock.now() == paused.resume_at

    resumed = enrollment(ctx, paused.id)
    assert resumed.state == EnrollmentState.ACTIVE and resumed.resume_at is None
    with ctx.db.read() as session:
        run = session.get(StepRun, waiting.id)
        assert run.status == StepRunStatus.PENDING and run.due_at >= paused.resume_at
    worker.run_until(run.due_at + timedelta(minutes=5))
    with ctx.db.read() as session:
        assert session.get(StepRun, waiting.id).status == StepRunStatus.SENT


def test_a_wrong_password_is_reported_not_raised_and_never_logged(
    ctx, world, dovecot, poller, caplog
):
    caplog.set_level(logging.INFO, logger="cadenza")
    update_mailbox(ctx, world.mailbox.id, {"imap_password": "wrong-Secret-42"})
    result = poll_mailbox(ctx, get_mailbox(ctx, world.mailbox.id))
    assert result.error and "LoginError" in result.error
    assert "wrong-Secret-42" not in caplog.text + result.error
    assert "wrong-Secret-42" not in repr(get_mailbox(ctx, world.mailbox.id))


def test_an_unreachable_server_is_reported(ctx, world, poller):
    update_mailbox(ctx, world.mailbox.id, {"imap_port": 1})
    result = poll_mailbox(ctx, get_mailbox(ctx, world.mailbox.id))
    assert result.error and "Connection" in result.error


def test_the_cli_sets_imap_and_polls(ctx, world, worker, dovecot, monkeypatch):
    sent = send_first_emails(ctx, world, worker, ["ann"])
    contact, _, message = sent["ann"]
    # The CLI runs on the system clock: the message arrives "now", inside its look-back.
    dovecot.append(
        inbound_mail("reply_gmail", contact=contact.email, message_id=message.message_id)
    )
    monkeypatch.setenv("CADENZA_DATABASE_URL", ctx.db.url)
    # the test's key file, not ./cadenza.key in the checkout (PostgreSQL's default)
    monkeypatch.setenv("CADENZA_KEY_FILE", ctx.settings.key_file)
    monkeypatch.setenv("CADENZA_IMAP_PASSWORD", dovecot.password)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    where = ["--host", dovecot.host, "--port", str(dovecot.port), "--security", "none"]
    args = ["mailboxes", "set-imap", str(world.mailbox.id), *where, "--username", dovecot.user]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and dovecot.password not in result.output, result.output

    result = runner.invoke(app, ["inbox", "poll"])
    assert result.exit_code == 0, result.output
    assert f"mailbox {world.mailbox.id}: 1 read (reply 1)" in result.output
    assert enrollment(ctx, sent["ann"][1]).reason == "replied"
    status = runner.invoke(app, ["inbox", "status"]).output
    assert "INBOX" in status and dovecot.password not in status

    result = runner.invoke(app, ["mailboxes", "set-imap", str(world.mailbox.id), "--host",
                                 dovecot.host, "--port", "1", "--security", "none"])  # fmt: skip
    failed = runner.invoke(app, ["inbox", "poll"])
    assert failed.exit_code == 1 and "Connection" in failed.output
    bad = runner.invoke(app, ["mailboxes", "set-imap", "1", "--host", "x", "--security", "ssl"])
    assert bad.exit_code == 1 and "validation_error" in bad.output


def test_a_reply_with_a_large_attachment_is_read_in_part(ctx, world, worker, dovecot, poller):
    [(contact, enrollment_id, message)] = send_first_emails(ctx, world, worker, ["ann"]).values()
    reply = EmailMessage()
    reply["From"], reply["To"] = contact.email, world.mailbox.from_email
    reply["Subject"], reply["Message-ID"] = "Re: Hi Ann", "<big-1@corp.example>"
    reply["In-Reply-To"] = message.message_id
    reply.set_content("Signed contract attached.")
    reply.add_attachment(os.urandom(2 * MAX_BYTES), "application", "pdf", filename="c.pdf")
    dovecot.append(reply.as_bytes(), msg_time=ctx.clock.now())
    [result] = poller.poll_once()
    assert result.kinds == {"reply": 1}
    assert enrollment(ctx, enrollment_id).reason == "replied"
    assert all(b"\\Seen" not in flags for flags in dovecot.flags().values())


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_and_starttls_verify_the_server_certificate(ctx, world, worker, security):
    with Dovecot(tls=True) as server:
        settings = {
            "imap_host": server.host,
            "imap_port": server.tls_port if security == "tls" else server.port,
            "imap_security": security,
            "imap_username": server.user,
            "imap_password": server.password,
        }
        update_mailbox(ctx, world.mailbox.id, settings)
        sent = send_first_emails(ctx, world, worker, ["ann"])
        deliver_about(server, ctx, "reply_gmail", sent["ann"])
        mailbox = get_mailbox(ctx, world.mailbox.id)

        untrusted = poll_mailbox(ctx, mailbox)  # the system's CAs do not know the test CA
        assert untrusted.error and "CERTIFICATE_VERIFY_FAILED" in untrusted.error

        result = poll_mailbox(ctx, mailbox, server.ssl_context())
        assert result.error is None and result.kinds == {"reply": 1}
        assert all(b"\\Seen" not in flags for flags in server.flags().values())


def wait_for(condition, what, seconds=20.0):
    """Polls a condition another thread will make true, with a deadline."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.xdist_group("realclock")
def test_idle_wakes_the_poller_as_soon_as_mail_arrives(ctx, world, worker, dovecot, poller):
    sent = send_first_emails(ctx, world, worker, ["ann"])
    # A running poller needs time to pass by itself: the system clock, and an interval
    # so long that only IDLE can explain a prompt reaction.
    live = InboxPoller(Context(db=ctx.db, clock=SystemClock(), settings=ctx.settings), 600)
    thread = live.start()
    try:
        wait_for(lambda: world.mailbox.id in live.watching(), "the IDLE session")
        wait_for(lambda: get_cursor(ctx, world.mailbox.id, "INBOX"), "the first pass")
        contact, enrollment_id, message = sent["ann"]
        dovecot.append(inbound_mail("reply_gmail", contact=contact.email,
                                    message_id=message.message_id))  # fmt: skip
        wait_for(lambda: enrollment(ctx, enrollment_id).reason == "replied", "the reply")
    finally:
        live.stop()
        thread.join(30)
    assert not thread.is_alive()
