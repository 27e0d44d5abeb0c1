"""Matching inbox mail to what we sent (services/signals/inbound.py), one rule per test.

Each rule was once removable with no test failing: a sender is matched only to
enrollments sending from the mailbox the mail arrived in; our own copy of a message
(the mailbox writing to itself) is never a reply; a bounce about another recipient of
our message is not pinned on the contact the message went to.
"""

from __future__ import annotations

from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.accounts.users import create_user
from cadenza.services.signals import inbound
from tests.support.inbound_mail import inbound_mail
from tests.support.signals import enrollment, events, send_first_emails


def test_a_sender_is_matched_only_in_the_mailbox_that_sent_to_them(ctx, world, worker):
    [(contact, enrollment_id, _)] = send_first_emails(ctx, world, worker, ["ann"]).values()
    colleague = create_user(ctx, "cole@example.com", firstname="Cole")
    elsewhere = create_mailbox(ctx, colleague.id, "cole@example.com")
    fresh = inbound_mail("reply_new_thread", contact=contact.email, mailbox=elsewhere.from_email)
    # a new thread from Ann to another rep's mailbox is not a reply to our sequence...
    assert inbound.ingest(ctx, elsewhere.id, fresh, "uid-1").kind == "unrelated"
    assert enrollment(ctx, enrollment_id).state == "active"
    assert events(ctx, "reply") == []
    # ...while the same mail in the mailbox that wrote to her is
    here = inbound_mail("reply_new_thread", contact=contact.email, mailbox=world.mailbox.from_email)
    assert inbound.ingest(ctx, world.mailbox.id, here, "uid-2").kind == "reply"
    assert enrollment(ctx, enrollment_id).state == "unenrolled"


def test_our_own_copy_of_a_message_is_not_a_reply(ctx, world, worker):
    [(_, enrollment_id, first)] = send_first_emails(ctx, world, worker, ["ann"]).values()
    # what the mailbox itself wrote in the thread (a copy kept in the inbox, a note to
    # self): it answers our first email, but it is from us
    own = inbound_mail(
        "reply_gmail",
        contact=world.mailbox.from_email,
        message_id=first.message_id,
        mailbox=world.mailbox.from_email,
    )
    assert inbound.ingest(ctx, world.mailbox.id, own, "uid-1").kind == "unrelated"
    assert enrollment(ctx, enrollment_id).state == "active"
    assert events(ctx, "reply") == []


def test_a_bounce_about_another_recipient_is_not_pinned_on_our_contact(ctx, world, worker):
    sent = send_first_emails(ctx, world, worker, ["ann", "bob"])
    (_, ann_enrollment, ann_first), (bob, bob_enrollment, _) = sent["ann"], sent["bob"]
    # the report quotes our email to Ann, but the address that failed is someone
    # else's: a forward, or a list it reached
    stranger = inbound_mail(
        "dsn_postfix", contact="stranger@elsewhere.example", message_id=ann_first.message_id
    )
    assert inbound.ingest(ctx, world.mailbox.id, stranger, "uid-1").kind == "unrelated"
    assert enrollment(ctx, ann_enrollment).state == "active"
    assert events(ctx, "bounce") == []
    # when that other address is one of our contacts, the bounce is about them, not Ann;
    # but it names no message sent to them, so it is recorded and changes nothing
    about_bob = inbound_mail("dsn_postfix", contact=bob.email, message_id=ann_first.message_id)
    assert inbound.ingest(ctx, world.mailbox.id, about_bob, "uid-2").kind == "bounce"
    [event] = events(ctx, "bounce")
    assert event.contact_id == bob.id and event.message_id is None
    assert event.data.get("unverified")
    assert enrollment(ctx, ann_enrollment).state == "active"
    assert enrollment(ctx, bob_enrollment).state == "active"
