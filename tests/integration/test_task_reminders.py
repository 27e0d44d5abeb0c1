"""Task reminders per user and the daily digest, through the worker against a real SMTP
server on loopback, on both databases, on an injected clock (docs/task-reminders.md).

The world's rep is in New York: on MONDAY_9AM (09:00 UTC, 04:00 there) the 8:00 local
digest hour is 13:00 UTC.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import default

import pytest

from cadenza.domain.enums import DigestStatus, MessageStatus
from cadenza.engine.worker import Worker, WorkerOptions
from cadenza.services.accounts.users import create_user
from cadenza.services.enrollment import reminders
from cadenza.store.models import Mailbox, Message, Task, TaskDigest
from tests.conftest import crash_while_handing_over, enroll_ids, spaced_ok
from tests.support.rows import claim, one, rows, write
from tests.support.smtp_sink import SmtpSink

CALL = [{"type": "task", "task_title": "Call {{ contact.firstname }}"}]
DIGEST_HOUR_UTC = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)  # 8:00 in New York


@pytest.fixture
def sink():
    with SmtpSink() as server:
        yield server


@pytest.fixture
def rep(world, sink):
    """The world's rep sends from the sink; a call sequence with task reminders on."""
    world.send_over_smtp(sink.host, sink.port, steps=CALL, name="Calls", settings={
        "follow_up_days": "every_day", "task_reminders": True})  # fmt: skip
    return world


def parsed(message):
    return BytesParser(policy=default).parsebytes(message.data)


def test_a_reminder_comes_n_minutes_before_due_not_before_and_never_with_none(
    ctx, rep, sink, worker
):
    reminders.update_preferences(ctx, rep.user.id, {"timing": "none"}, actor_id=rep.user.id)
    enroll_ids(rep, [rep.contact()])
    worker.run_until(ctx.clock.now() + timedelta(hours=1))
    [task] = rows(ctx, Task)
    assert task.remind_at is None and sink.messages == []  # none: never
    due = ctx.clock.now() + timedelta(hours=2)
    write(ctx, Task, task.id, due_at=due)  # the task moved to later (a reschedule)
    changed = {"timing": "before", "minutes_before": 30}
    reminders.update_preferences(ctx, rep.user.id, changed, actor_id=rep.user.id)
    worker.run_until(due - timedelta(minutes=31))
    assert sink.messages == []
    worker.run_until(due)
    [reminder] = sink.messages
    assert parsed(reminder)["Subject"] == "Task due: Call Ann"
    [message] = rows(ctx, Message)
    assert message.sent_at == due - timedelta(minutes=30)
    worker.run_until(due + timedelta(days=1))
    assert len(sink.messages) == 1


def test_the_digest_comes_once_a_local_day_at_the_users_hour_listing_the_days_tasks(
    ctx, rep, sink, worker
):
    changes = {"timing": "none", "digest": True, "digest_hour": 8}
    reminders.update_preferences(ctx, rep.user.id, changes, actor_id=rep.user.id)
    enroll_ids(rep, [rep.contact(), rep.contact("bo@corp.example", firstname="Bo")])
    worker.run_until(ctx.clock.now())  # the tasks fall due now
    first = min(rows(ctx, Task), key=lambda task: task.id)  # Ann's, due 5 minutes later
    write(ctx, Task, first.id, due_at=first.due_at + timedelta(minutes=5))
    assert worker.next_wakeup() == DIGEST_HOUR_UTC  # the tick wakes up for the digest
    worker.run_until(DIGEST_HOUR_UTC - timedelta(minutes=1))
    assert sink.messages == []
    worker.run_until(DIGEST_HOUR_UTC + timedelta(hours=2))
    second = Worker(ctx, WorkerOptions(batch_size=100), worker_id="second")
    second.tick()  # another worker the same day: nothing more
    second.close()
    [digest] = sink.messages
    email = parsed(digest)
    assert email["Subject"] == "Your tasks for Mon 02 Mar: 2 tasks"
    assert digest.rcpt_tos == ("rep@example.com",)
    body = email.get_body(("html",)).get_content()
    assert "Call Ann" in body and "Call Bo" in body and "bo@corp.example" in body
    # one line a task, in due order (Bo's first), each contact named with its address
    contacts = re.findall(r"<tr><td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td></tr>", body)
    assert [html.unescape(c) for c in contacts] == [
        "Bo <bo@corp.example>",
        "Ann <ann@corp.example>",
    ]
    assert "04:00" in body  # due 09:00 UTC, shown in New York time
    assert 'href="http://127.0.0.1:8000/tasks"' in body
    [row] = rows(ctx, TaskDigest)
    assert (row.status, row.task_count) == (DigestStatus.CLAIMED, 2)
    [message] = rows(ctx, Message, Message.id == row.message_id)
    assert (message.status, message.sent_at) == (MessageStatus.SENT, DIGEST_HOUR_UTC)
    # the next local day: the tasks are overdue and listed again, once
    worker.run_until(DIGEST_HOUR_UTC + timedelta(days=1, hours=1))
    assert len(sink.messages) == 2
    assert (
        "overdue since Mon 02 Mar 04:00"
        in parsed(sink.messages[1]).get_body(("html",)).get_content()
    )


def test_a_digest_lost_in_a_crash_is_never_sent_twice(ctx, rep, sink, worker):
    reminders.update_preferences(
        ctx, rep.user.id, {"timing": "none", "digest": True}, actor_id=rep.user.id
    )
    enroll_ids(rep, [rep.contact()])
    worker.run_until(DIGEST_HOUR_UTC - timedelta(minutes=1))
    ctx.clock.set(DIGEST_HOUR_UTC)
    assert reminders.make_due_digests(ctx) == 1
    assert reminders.make_due_digests(ctx) == 0  # recorded once, whoever asks again
    crash_while_handing_over(ctx, worker)  # the digest's worker died mid-send
    worker.run_until(DIGEST_HOUR_UTC + timedelta(hours=12))
    assert sink.messages == []  # maybe sent: never sent again
    worker.run_until(DIGEST_HOUR_UTC + timedelta(days=1, hours=1))
    assert len(sink.messages) == 1  # the next day's
    first, second = rows(ctx, TaskDigest)
    assert first.local_date.day == 2 and second.local_date.day == 3
    lost = rows(ctx, Message, Message.id == first.message_id)
    assert [m.status for m in lost] == [MessageStatus.UNKNOWN]  # settled, for review


def test_the_digest_takes_the_mailboxs_send_slots(ctx, rep, sink, worker):
    write(ctx, Mailbox, rep.mailbox.id, per_minute_limit=1)
    reminders.update_preferences(
        ctx, rep.user.id, {"timing": "none", "digest": True}, actor_id=rep.user.id
    )
    enroll_ids(rep, [rep.contact()])
    emails = rep.make_sequence(
        steps=[{"type": "email", "subject": "Hi", "body": "<p>Hello</p>"}], name="Mail"
    )
    worker.run_until(DIGEST_HOUR_UTC - timedelta(seconds=1))
    ctx.clock.set(DIGEST_HOUR_UTC)
    enroll_ids(rep, rep.contacts(2), emails)  # two emails due with the digest
    worker.run_until(DIGEST_HOUR_UTC + timedelta(minutes=10))
    sent = rows(ctx, Message)
    assert len(sent) == 3 and {m.status for m in sent} == {MessageStatus.SENT}
    assert spaced_ok([m.sent_at for m in sent], 1)


def test_who_gets_no_digest_and_why(ctx, rep, worker):
    changes = {"timing": "none", "digest": True}
    reminders.update_preferences(ctx, rep.user.id, changes, actor_id=rep.user.id)
    boxless = create_user(ctx, "nobox@example.com", timezone="UTC")
    reminders.update_preferences(ctx, boxless.id, {"digest": True}, actor_id=boxless.id)
    create_user(ctx, "off@example.com", timezone="UTC")  # digest off (the default)
    assert reminders.get_preferences(ctx, boxless.id).digest_mailbox is None
    worker.run_until(DIGEST_HOUR_UTC + timedelta(hours=1))
    by_user = {d.user_id: d.status for d in rows(ctx, TaskDigest)}
    assert by_user == {rep.user.id: DigestStatus.NO_TASKS, boxless.id: DigestStatus.NO_MAILBOX}
    assert rows(ctx, Message) == []


def test_a_clean_stop_gives_an_unsent_digest_back_and_it_goes_once(ctx, world, worker):
    from cadenza.services.delivery import recovery

    reminders.update_preferences(ctx, world.user.id, {"digest": True, "timing": "none"})
    calls = world.make_sequence(steps=CALL, name="Calls")
    enroll_ids(world, [world.contact()], calls)
    worker.run_until(DIGEST_HOUR_UTC - timedelta(minutes=1))
    ctx.clock.set(DIGEST_HOUR_UTC)
    reminders.make_due_digests(ctx)
    [held] = claim(ctx, "stopping", world.mailbox.id)
    assert held.digest_id is not None and held.enrollment_id is None
    recovery.release_unsent(ctx, [held], "stopping")
    [row] = rows(ctx, TaskDigest)
    assert (row.status, row.message_id, rows(ctx, Message)) == (DigestStatus.PENDING, None, [])
    assert row.claimed_at is None  # as if never claimed: the next claim takes it
    worker.run_until(DIGEST_HOUR_UTC + timedelta(hours=1))
    [sent] = rows(ctx, Message)  # the capture mailbox: stored and counted as sent
    assert sent.status == MessageStatus.SENT and sent.id == one(ctx, TaskDigest, row.id).message_id
