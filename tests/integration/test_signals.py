"""Unenroll rules and their interplay with the engine: a reply while the next step is
being sent, the company rule, meetings, and auto-replies next to a person's pause."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select

from cadenza.domain.delivery_outcome import DeliveryOutcome, DeliveryResult
from cadenza.domain.enums import EventKind
from cadenza.services.accounts.mailboxes import create_mailbox, delete_mailbox
from cadenza.services.delivery import claims
from cadenza.services.delivery import handover as delivery
from cadenza.services.enrollment import control as enrollment_control
from cadenza.services.signals import inbound
from cadenza.services.signals.effects import Signal, record_signal
from cadenza.services.signals.inbox_cursors import Cursor, get_cursor, save_cursor
from cadenza.store.models import AuditEntry, Message, StepRun
from tests.conftest import enroll_ids
from tests.support.inbound_mail import inbound_mail
from tests.support.signals import enrollment, events, send_first_emails
from tests.support.smtp_sink import SmtpSink

TWO_EMAILS = [
    {"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"},
    {"type": "email", "delay_days": 1, "thread_with_step": 1, "body": "<p>Bump</p>"},
    {"type": "task", "delay_days": 1, "task_title": "Call"},
]


def reply_to(message, key="r1"):
    return Signal(EventKind.REPLY, dedupe_key=key, message_pk=message.id)


def claim_next_email(ctx, enrollment_id):
    """Brings step 2 due and claims it, as a worker's tick would; nothing is sent yet."""
    with ctx.db.read() as session:
        run = session.scalar(
            select(StepRun).where(
                StepRun.enrollment_id == enrollment_id, StepRun.status == "pending"
            )
        )
    ctx.clock.set(run.due_at)
    [claim] = claims.claim_emails(
        ctx, run.mailbox_id, "w1", batch_size=10, horizon=timedelta(0), lease=timedelta(minutes=5)
    )
    assert claim.run_id == run.id
    return claim


def runs(ctx, enrollment_id):
    with ctx.db.read() as session:
        return {
            r.step_position: r.status
            for r in session.scalars(select(StepRun).where(StepRun.enrollment_id == enrollment_id))
        }


def test_a_reply_after_the_next_email_left_records_it_sent_then_unenrolls(ctx, world, worker):
    sequence = world.make_sequence(steps=TWO_EMAILS)
    [(_, enrollment_id, first)] = send_first_emails(ctx, world, worker, ["ann"], sequence).values()
    claim = claim_next_email(ctx, enrollment_id)
    # the worker commits "handing" …
    assert delivery.hand_over(ctx, claim, "w1") is delivery.HandOver.GO

    outcome = record_signal(ctx, reply_to(first))  # … the reply lands while it talks SMTP …
    assert outcome.unenrolled == [enrollment_id]

    # … and the server accepted it.
    result = DeliveryResult(DeliveryOutcome.SENT, 250, "2.0.0 queued")
    delivery.record_outcomes(ctx, [(claim, result)], "w1")
    row = enrollment(ctx, enrollment_id)
    assert (row.state, row.reason, row.cause_event_id) == (
        "unenrolled",
        "replied",
        outcome.event_id,
    )
    assert runs(ctx, enrollment_id) == {1: "sent", 2: "sent"}  # no task step created after it
    with ctx.db.read() as session:
        assert session.get(Message, claim.message_pk).status == "sent"


def test_a_reply_before_the_next_email_left_means_it_never_leaves(ctx, world, worker):
    sequence = world.make_sequence(steps=TWO_EMAILS)
    [(_, enrollment_id, first)] = send_first_emails(ctx, world, worker, ["ann"], sequence).values()
    claim = claim_next_email(ctx, enrollment_id)  # claimed and composed, not yet handed over

    record_signal(ctx, reply_to(first))

    assert delivery.hand_over(ctx, claim, "w1") is delivery.HandOver.SKIP
    assert runs(ctx, enrollment_id) == {1: "sent", 2: "cancelled"}
    with ctx.db.read() as session:
        message = session.get(Message, claim.message_pk)
        assert message.status == "prepared" and message.handed_at is None
    assert enrollment(ctx, enrollment_id).reason == "replied"


def test_the_company_rule_unenrolls_colleagues_in_the_same_sequence_only(ctx, world, worker):
    sequence = world.make_sequence(settings={"unenroll_on_reply": "company"})
    sent = send_first_emails(ctx, world, worker, ["ann", "bob"], sequence, company="Corp Inc")
    carl = send_first_emails(ctx, world, worker, ["carl"], sequence, company=" corp inc ")
    other = send_first_emails(ctx, world, worker, ["dora"], sequence, company="Other Ltd")
    elsewhere = world.make_sequence(name="Elsewhere")
    eve = send_first_emails(ctx, world, worker, ["eve"], elsewhere, company="Corp Inc")

    outcome = record_signal(ctx, reply_to(sent["ann"][2]))

    ids = {name: row[1] for name, row in {**sent, **carl, **other, **eve}.items()}
    assert sorted(outcome.unenrolled) == sorted([ids["ann"], ids["bob"], ids["carl"]])
    assert enrollment(ctx, ids["ann"]).reason == "replied"
    for name in ("bob", "carl"):
        row = enrollment(ctx, ids[name])
        assert (row.reason, row.cause_event_id) == ("company_replied", outcome.event_id)
    assert enrollment(ctx, ids["dora"]).state == "active"
    assert enrollment(ctx, ids["eve"]).state == "active"  # another sequence


def test_the_contact_rule_leaves_colleagues_alone(ctx, world, worker):
    sent = send_first_emails(ctx, world, worker, ["ann", "bob"], company="Corp Inc")
    assert record_signal(ctx, reply_to(sent["ann"][2])).unenrolled == [sent["ann"][1]]
    assert enrollment(ctx, sent["bob"][1]).state == "active"


def test_a_booked_meeting_unenrolls_where_the_sequence_says_so(ctx, world, worker):
    keep = world.make_sequence(settings={"unenroll_on_meeting": False}, name="Keep")
    ann = send_first_emails(ctx, world, worker, ["ann"])["ann"]
    bob = send_first_emails(ctx, world, worker, ["bob"], keep)["bob"]
    for contact, _, _ in (ann, bob):
        signal = Signal(EventKind.MEETING_BOOKED, f"m-{contact.id}", contact_id=contact.id)
        record_signal(ctx, signal)
    assert enrollment(ctx, ann[1]).reason == "meeting_booked"
    assert enrollment(ctx, bob[1]).state == "active"
    assert len(events(ctx, "meeting_booked")) == 2


def test_an_auto_reply_leaves_a_pause_made_by_a_person_alone(ctx, world, worker):
    [(_, enrollment_id, first)] = send_first_emails(ctx, world, worker, ["ann"]).values()
    enrollment_control.pause(ctx, enrollment_id)
    auto = Signal(EventKind.AUTO_REPLY, "a1", message_pk=first.id)
    assert record_signal(ctx, auto).paused == []
    row = enrollment(ctx, enrollment_id)
    assert row.state == "paused" and row.resume_at is None  # a person resumes it


def test_the_same_signal_twice_changes_nothing(ctx, world, worker):
    [(_, enrollment_id, first)] = send_first_emails(ctx, world, worker, ["ann"]).values()
    first_outcome = record_signal(ctx, reply_to(first, "same"))
    with ctx.db.read() as session:
        audit = session.scalar(select(func.count()).select_from(AuditEntry))
    again = record_signal(ctx, reply_to(first, "same"))
    assert again.duplicate and again.event_id == first_outcome.event_id and not again.unenrolled
    assert len(events(ctx)) == 1
    with ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == audit
    assert enrollment(ctx, enrollment_id).cause_event_id == first_outcome.event_id


def test_a_reply_landing_during_the_smtp_conversation_of_the_next_step(ctx, world, worker):
    """The real thing: the worker is mid-DATA with the SMTP server when the reply is read."""
    with SmtpSink(auth={"rep": "pw-1"}) as sink:
        mailbox = create_mailbox(
            ctx, world.user.id, "rep@corp.example", transport="smtp", smtp_host=sink.host,
            smtp_port=sink.port, smtp_security="none", smtp_username="rep", smtp_password="pw-1",
        )  # fmt: skip
        sequence = world.make_sequence(steps=TWO_EMAILS)
        contact = world.contact("ann@corp.example")
        [enrollment_id] = enroll_ids(world, [contact], sequence=sequence, mailbox_id=mailbox.id)
        worker.run_until(ctx.clock.now() + timedelta(minutes=5))
        with ctx.db.read() as session:
            first = session.scalar(select(Message).where(Message.enrollment_id == enrollment_id))
            second = session.scalar(
                select(StepRun).where(
                    StepRun.enrollment_id == enrollment_id, StepRun.status == "pending"
                )
            )
        ctx.clock.set(second.due_at)
        reached, release = sink.hang_data_after(0)
        sending = threading.Thread(target=worker.tick)
        sending.start()
        try:
            assert reached.wait(10), "the worker never reached DATA"
            raw = inbound_mail(
                "reply_outlook", contact=contact.email, message_id=first.message_id,
                mailbox=mailbox.from_email, subject=first.subject,
            )  # fmt: skip
            assert inbound.ingest(ctx, mailbox.id, raw, "uid-1").kind == "reply"
        finally:
            release.set()
            sending.join(30)
        assert not sending.is_alive()
        assert sink.message_count == 2  # step 2 had left: it is recorded as sent …
    assert runs(ctx, enrollment_id) == {1: "sent", 2: "sent"}  # … and nothing follows it
    row = enrollment(ctx, enrollment_id)
    assert (row.state, row.reason) == ("unenrolled", "replied")
    with ctx.db.read() as session:
        statuses = [m.status for m in session.scalars(select(Message).order_by(Message.id))]
    assert statuses == ["sent", "sent"]


def test_deleting_a_mailbox_deletes_its_inbox_cursor(ctx, world):
    save_cursor(ctx, world.mailbox.id, "INBOX", Cursor(7, 42))
    assert get_cursor(ctx, world.mailbox.id, "INBOX") == Cursor(7, 42)
    delete_mailbox(ctx, world.mailbox.id)
    assert get_cursor(ctx, world.mailbox.id, "INBOX") is None


def test_the_company_record_defines_the_same_company(ctx, world, worker):
    """Issue 11 item 17: contacts linked to the replier's company record are colleagues
    whatever their free-text company says; a namesake without the link is not."""
    from cadenza.services.crm import records

    sequence = world.make_sequence(settings={"unenroll_on_reply": "company"})
    sent = send_first_emails(ctx, world, worker, ["ann"], sequence, company="Globex")
    bob = send_first_emails(ctx, world, worker, ["bob"], sequence, company="Globex Inc.")
    carl = send_first_emails(ctx, world, worker, ["carl"], sequence, company="Globex")
    records.create_record(
        ctx, world.user.id, "company", name="Globex",
        associations=[records.AssociationIn(sent["ann"][0].id, primary=True),
                      records.AssociationIn(bob["bob"][0].id)],
    )  # fmt: skip
    outcome = record_signal(ctx, reply_to(sent["ann"][2]))
    assert sorted(outcome.unenrolled) == sorted([sent["ann"][1], bob["bob"][1]])
    assert enrollment(ctx, bob["bob"][1]).reason == "company_replied"
    assert enrollment(ctx, carl["carl"][1]).state == "active"  # same text, not the record


def test_without_a_company_record_the_company_field_decides(ctx, world, worker):
    sequence = world.make_sequence(settings={"unenroll_on_reply": "company"})
    sent = send_first_emails(ctx, world, worker, ["ann", "bob"], sequence, company="Initech")
    nobody = send_first_emails(ctx, world, worker, ["dora", "eve"], sequence)  # no company
    outcome = record_signal(ctx, reply_to(sent["ann"][2]))
    assert sorted(outcome.unenrolled) == sorted([sent["ann"][1], sent["bob"][1]])
    assert record_signal(ctx, reply_to(nobody["dora"][2], key="r2")).unenrolled == [
        nobody["dora"][1]
    ]
    assert enrollment(ctx, nobody["eve"][1]).state == "active"
