"""One implementation per business effect (issue 13, item 2).

Each test drives one effect through its different doors and asserts that what they
leave behind is alike, so the paths cannot drift apart again unnoticed: unsubscribing
(signed link, events API, a provider's complaint), recording a send and finishing an
enrollment (the worker, a person's review of an unknown send), the end of an
out-of-office pause (the worker's tick, no inbox poller), task reminders (the mailbox's
claim, throttle and message rows).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from cadenza.domain.enums import EventKind
from cadenza.domain.inbound.postmark import ProviderEvent
from cadenza.domain.link_tokens import Purpose, sign
from cadenza.services.accounts.link_secret import link_secret
from cadenza.services.accounts.mailboxes import update_mailbox
from cadenza.services.accounts.users import create_user
from cadenza.services.automation import rules as automation_rules
from cadenza.services.delivery.outbox import list_messages, resolve_unknown
from cadenza.services.events_out import webhooks
from cadenza.services.signals import events, tracking
from cadenza.services.signals.effects import Signal, record_signal
from cadenza.store.models import (
    AuditEntry,
    AutomationEvent,
    Contact,
    DeliveryAttempt,
    EmailEvent,
    Message,
    StepRun,
    WebhookDelivery,
)
from tests.conftest import crash_while_handing_over, enroll_ids
from tests.support.rows import rows
from tests.support.signals import enrollment, send_first_emails

ONE_STEP = [{"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"}]


@pytest.fixture
def settings(settings):
    """Webhooks here are only written, never sent: a loopback address is enough."""
    return settings.model_copy(update={"outbound_allow": "127.0.0.1"})


# --- unsubscribe ------------------------------------------------------------------------


def test_link_api_and_complaint_leave_the_same_unsubscribe(ctx, world, worker):
    sent = send_first_emails(ctx, world, worker, ["ann", "bob", "cy"])
    (ann, ann_eid, ann_msg), (bob, bob_eid, bob_msg), (cy, cy_eid, cy_msg) = sent.values()

    token = sign(link_secret(ctx), Purpose.UNSUBSCRIBE, ann_msg.tracking_id)
    tracking.unsubscribe(ctx, token, "Mail/1.0")
    api = events.ExternalEvent(EventKind.UNSUBSCRIBE, "crm-1", message_id=bob_msg.message_id)
    events.receive(ctx, api)
    complaint = ProviderEvent(
        EventKind.COMPLAINT, "SpamComplaint:7", cy.email, True, cy_msg.message_id, None, {}
    )
    events.receive_provider(ctx, complaint, "postmark")

    [complained] = rows(ctx, EmailEvent, EmailEvent.kind == "complaint")
    unsubscribes = {
        e.contact_id: e for e in rows(ctx, EmailEvent, EmailEvent.kind == "unsubscribe")
    }
    assert set(unsubscribes) == {ann.id, bob.id, cy.id}  # one kind of event, whoever asked
    causes = {c: e.cause_event_id for c, e in unsubscribes.items()}
    assert causes == {ann.id: None, bob.id: None, cy.id: complained.id}
    assert complained.data["unenrolled"] == [cy_eid]  # the complaint answers for what it caused

    audits = rows(ctx, AuditEntry)
    for contact, eid, message, reason in (
        (ann, ann_eid, ann_msg, "unsubscribed"),
        (bob, bob_eid, bob_msg, "unsubscribed"),
        (cy, cy_eid, cy_msg, "complained"),
    ):
        event = unsubscribes[contact.id]
        assert (event.enrollment_id, event.message_id) == (eid, message.id)
        assert {"source", "unenrolled", "paused"} <= set(event.data)
        assert event.data["unenrolled"] == [eid]
        ended = enrollment(ctx, eid)
        assert (ended.state, ended.reason, ended.cause_event_id) == ("unenrolled", reason, event.id)
        assert ended.reason_detail == f"unsubscribe event {event.id}"
        [marked] = [
            a for a in audits if a.action == "contact.unsubscribe" and a.subject_id == contact.id
        ]
        assert marked.data == {"event_id": event.id, "message_id": message.id}
        [unenrolled] = [
            a for a in audits if a.action == "enrollment.unenroll" and a.subject_id == eid
        ]
        assert unenrolled.data == {
            "reason": reason,
            "detail": ended.reason_detail,
            "event_id": event.id,
        }


def test_a_second_link_unsubscribe_after_an_undo_counts_again(ctx, world, worker):
    (ann, _, message) = send_first_emails(ctx, world, worker, ["ann"])["ann"]
    token = sign(link_secret(ctx), Purpose.UNSUBSCRIBE, message.tracking_id)
    tracking.unsubscribe(ctx, token)
    [first] = rows(ctx, EmailEvent)
    admin = create_user(ctx, "admin@example.com", role="admin")
    events.revoke(ctx, admin, first.id, "clicked by a scanner")
    again = tracking.unsubscribe(ctx, token)
    assert again.already is False
    assert len(rows(ctx, EmailEvent, EmailEvent.kind == "unsubscribe")) == 2
    with ctx.db.read() as session:
        assert session.get(Contact, ann.id).unsubscribed_at is not None


# --- recording a send, finishing --------------------------------------------------------


def test_a_send_recorded_by_the_worker_or_by_a_review_reports_alike(ctx, world, worker):
    webhooks.create_webhook(ctx, None, "http://127.0.0.1:9/hook", ["step_sent", "finished"])
    sequence = world.make_sequence(steps=ONE_STEP, name="One")
    automation_rules.create_rule(  # a listener, so the trigger events are kept; it acts on nothing
        ctx, None, name="listen", sequence_id=world.sequence.id,
        trigger={"type": "enrollment_finished", "sequence_id": sequence.id},
        action={"type": "unenroll", "scope": "this"},
    )  # fmt: skip
    [fast] = enroll_ids(world, [world.contact("a@corp.example")], sequence)
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))  # the worker's own path
    [slow] = enroll_ids(world, [world.contact("b@corp.example")], sequence)
    crash_while_handing_over(ctx, worker)
    [unknown] = rows(ctx, Message, Message.status == "unknown")
    resolve_unknown(ctx, unknown.id, delivered=True)  # a person's word

    for eid in (fast, slow):
        assert enrollment(ctx, eid).state == "finished"
    reported = {}
    for delivery in rows(ctx, WebhookDelivery):
        data = delivery.payload["data"]
        reported[(delivery.event_type, data["enrollment_id"])] = data
    assert sorted(reported) == sorted(
        (kind, eid) for kind in ("step_sent", "finished") for eid in (fast, slow)
    )
    for kind in ("step_sent", "finished"):
        one, other = reported[(kind, fast)], reported[(kind, slow)]
        assert set(one) == set(other), kind
        different = {k for k in one if one[k] != other[k]}
        assert different <= {"enrollment_id", "contact_id", "message_id"}, kind
    ended = {e.data["enrollment_id"]: e.data for e in rows(ctx, AutomationEvent)
             if e.type == "enrollment_ended"}  # fmt: skip
    assert set(ended[fast]) == set(ended[slow])
    assert ended[fast]["state"] == ended[slow]["state"] == "finished"
    runs = rows(ctx, StepRun)
    assert [(r.status, r.locked_by) for r in runs] == [("sent", None), ("sent", None)]


# --- timed signals ----------------------------------------------------------------------


def test_an_out_of_office_pause_ends_on_the_worker_tick_with_no_inbox_poller(ctx, world, worker):
    (_, eid, message) = send_first_emails(ctx, world, worker, ["dan"])["dan"]
    back = (ctx.clock.now() + timedelta(days=4)).date()
    signal = Signal(kind=EventKind.AUTO_REPLY, dedupe_key="ooo-1", message_pk=message.id,
                    return_date=back)  # fmt: skip
    assert record_signal(ctx, signal).paused == [eid]
    paused = enrollment(ctx, eid)
    assert paused.state == "paused" and paused.resume_at > ctx.clock.now()

    assert worker.next_wakeup() == paused.resume_at  # counted in the next wake-up
    worker.run_until(paused.resume_at)
    assert ctx.clock.now() == paused.resume_at
    resumed = enrollment(ctx, eid)
    assert resumed.state == "active" and resumed.resume_at is None


# --- task reminders ---------------------------------------------------------------------


def test_a_task_reminder_takes_the_mailbox_daily_room_like_any_email(ctx, world, worker):
    update_mailbox(ctx, world.mailbox.id, {"daily_limit": 1})
    tasks = world.make_sequence(
        steps=[{"type": "task", "task_title": "Call"}], settings={"task_reminders": True},
        name="Calls",
    )  # fmt: skip
    enroll_ids(world, [world.contact("t@corp.example")], tasks)
    worker.tick()  # the task falls due now, and so does its reminder

    [reminder] = rows(ctx, Message)
    assert (reminder.status, reminder.step_run_id, reminder.enrollment_id) == ("sent", None, None)
    assert (reminder.to_email, reminder.subject) == ("rep@example.com", "Task due: Call")
    assert [a.outcome for a in rows(ctx, DeliveryAttempt)] == ["sent"]
    assert [m.id for m in list_messages(ctx)] == [reminder.id]  # the outbox shows it
    worker.tick()
    assert len(rows(ctx, Message)) == 1  # at most once

    mail = world.make_sequence(steps=ONE_STEP, name="Mail")
    [eid] = enroll_ids(world, [world.contact("e@corp.example")], mail)
    worker.tick()
    [held] = rows(ctx, StepRun, StepRun.enrollment_id == eid)
    assert (held.status, held.wait_reason) == ("pending", "daily_limit")  # the reminder counted
    room_again = reminder.sent_at + timedelta(hours=24, seconds=1)
    worker.run_until(room_again - timedelta(seconds=2))
    assert rows(ctx, Message, Message.enrollment_id == eid) == []  # no room before
    assert worker.next_wakeup() == room_again  # the worker wakes up when the reminder ages out
    worker.run_until(room_again)
    [sent] = rows(ctx, Message, Message.enrollment_id == eid)
    assert sent.status == "sent" and sent.sent_at == room_again
