"""Inbound signals must name a message this mailbox sent before they change anything:
a bounce for a message we never sent, or an out-of-office with a forged In-Reply-To,
is recorded (and shown with the enrollment) but leaves the contact alone."""

from __future__ import annotations

from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.signals import inbound
from cadenza.store.models import Contact
from tests.conftest import enroll_ids
from tests.support.inbound_mail import inbound_mail
from tests.support.signals import enrollment, events, send_first_emails


def _contact(ctx, contact_id) -> Contact:
    with ctx.db.read() as session:
        return session.get(Contact, contact_id)


def test_a_bounce_quoting_our_message_marks_the_contact(ctx, world, worker):
    [(contact, enrollment_id, message)] = send_first_emails(ctx, world, worker, ["ann"]).values()
    raw = inbound_mail("dsn_postfix", contact=contact.email, message_id=message.message_id)

    result = inbound.ingest(ctx, world.mailbox.id, raw, "uid-1")

    assert result.kind == "bounce" and result.outcomes[0].unenrolled == [enrollment_id]
    assert _contact(ctx, contact.id).bounced_at == ctx.clock.now()


def test_a_bounce_for_a_message_we_never_sent_is_recorded_and_changes_nothing(ctx, world, worker):
    [(contact, enrollment_id, _)] = send_first_emails(ctx, world, worker, ["ann"]).values()
    raw = inbound_mail("dsn_postfix", contact=contact.email, message_id="<forged@evil.example>")

    result = inbound.ingest(ctx, world.mailbox.id, raw, "uid-1")

    [outcome] = result.outcomes
    assert outcome.matched and outcome.unenrolled == [] and outcome.paused == []
    assert _contact(ctx, contact.id).bounced_at is None
    assert enrollment(ctx, enrollment_id).state == "active"
    [event] = events(ctx, "bounce")
    assert event.contact_id == contact.id and event.message_id is None
    assert event.enrollment_id == enrollment_id  # shown in the enrollment's timeline
    assert event.data["unverified"] == "names no message this mailbox sent"


def test_a_bounce_quoting_a_message_another_mailbox_sent_changes_nothing(ctx, world, worker):
    [(contact, enrollment_id, message)] = send_first_emails(ctx, world, worker, ["ann"]).values()
    other = create_mailbox(ctx, world.user.id, "other@example.com")
    raw = inbound_mail(
        "dsn_exim", contact=contact.email, message_id=message.message_id, mailbox=other.from_email
    )

    [outcome] = inbound.ingest(ctx, other.id, raw, "uid-1").outcomes

    assert outcome.unenrolled == []
    assert _contact(ctx, contact.id).bounced_at is None
    assert enrollment(ctx, enrollment_id).state == "active"
    assert events(ctx, "bounce")[0].data["unverified"]


def test_an_auto_reply_with_a_forged_in_reply_to_does_not_pause(ctx, world, worker):
    [(contact, enrollment_id, _)] = send_first_emails(ctx, world, worker, ["ann"]).values()
    raw = inbound_mail("ooo_en", contact=contact.email, message_id="<made-up@evil.example>")

    result = inbound.ingest(ctx, world.mailbox.id, raw, "uid-1")

    assert result.kind == "auto_reply" and result.outcomes[0].paused == []
    row = enrollment(ctx, enrollment_id)
    assert row.state == "active" and row.resume_at is None
    [event] = events(ctx, "auto_reply")
    assert event.enrollment_id == enrollment_id and event.data["unverified"]


def test_an_auto_reply_quoting_another_mailboxs_message_does_not_pause_here(ctx, world, worker):
    sent = send_first_emails(ctx, world, worker, ["ann", "bob"])
    _, _, anns_message = sent["ann"]
    bob, bobs_enrollment, _ = sent["bob"]
    other = create_mailbox(ctx, world.user.id, "other@example.com")
    [mine] = enroll_ids(world, [world.contact("cy@corp.example")], mailbox_id=other.id)
    # Bob's out-of-office arrives in the other mailbox, naming Ann's message from the first.
    raw = inbound_mail(
        "ooo_en", contact=bob.email, message_id=anns_message.message_id, mailbox=other.from_email
    )

    result = inbound.ingest(ctx, other.id, raw, "uid-1")

    assert result.kind == "unrelated"  # Bob is in no sequence sending from this mailbox
    assert enrollment(ctx, bobs_enrollment).state == "active"
    assert enrollment(ctx, sent["ann"][1]).state == "active"
    assert enrollment(ctx, mine).state == "active"


def test_an_auto_reply_answering_our_message_pauses(ctx, world, worker):
    [(contact, enrollment_id, message)] = send_first_emails(ctx, world, worker, ["ann"]).values()
    raw = inbound_mail("ooo_en", contact=contact.email, message_id=message.message_id)

    [outcome] = inbound.ingest(ctx, world.mailbox.id, raw, "uid-1").outcomes

    assert outcome.paused == [enrollment_id]
    assert enrollment(ctx, enrollment_id).state == "paused"
