"""Matching inbox mail to what we sent (services/signals/inbound.py), one rule per test.

Each rule was once removable with no test failing: a sender is matched only to
enrollments sending from the mailbox the mail arrived in; our own copy of a message
(the mailbox writing to itself) is never a reply; a bounce about another recipient of
our message is not pinned on the contact the message went to.

Then what `ingest` records, field by field (the event's kind, dedupe key, ids and data,
the result, the enrollments ended or paused, `bounced_at`): the mutation run of this
module (docs/testing.md) showed that changing any of them went unnoticed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import make_msgid
from zoneinfo import ZoneInfo

from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.accounts.users import create_user
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.services.sequences.catalog import create_sequence
from cadenza.services.signals import inbound
from cadenza.store.models import Contact
from cadenza.store.models import Message as SentMessage
from tests.conftest import EMAIL_STEPS
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


# --- what ingest records, field by field ---------------------------------------------


def dsn(mailbox: str, recipients, original_message_id: str | None = None) -> bytes:
    """An RFC 3464 report built with the stdlib: one (Final-Recipient, Status, Action,
    Diagnostic-Code) per failed recipient, and the returned headers when given."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "MAILER-DAEMON@mail.example.com"
    report["To"] = mailbox
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Message-ID"] = make_msgid(domain="mail.example.com")
    report.attach(MIMEText("Your message could not be delivered.\n"))
    status = Message()
    status.set_type("message/delivery-status")
    reporting = Message()
    reporting["Reporting-MTA"] = "dns; mail.example.com"
    blocks = [reporting]
    for final_recipient, code, action, diagnostic in recipients:
        block = Message()
        block["Final-Recipient"] = final_recipient
        block["Action"] = action
        block["Status"] = code
        if diagnostic is not None:
            block["Diagnostic-Code"] = diagnostic
        blocks.append(block)
    status.set_payload(blocks)
    report.attach(status)
    if original_message_id is not None:
        returned = MIMEText(
            f"From: {mailbox}\nMessage-ID: {original_message_id}\n", "rfc822-headers"
        )
        report.attach(returned)
    return report.as_bytes()


def only_event(ctx, kind):
    [event] = events(ctx, kind)
    return event


def contact_row(ctx, contact_id) -> Contact:
    with ctx.db.read() as session:
        return session.get(Contact, contact_id)


def message_row(ctx, message_pk) -> SentMessage:
    with ctx.db.read() as session:
        return session.get(SentMessage, message_pk)


def test_a_reply_matched_by_message_id_records_the_event_and_ends_that_enrollment(
    ctx, world, worker
):
    sent = send_first_emails(ctx, world, worker, ["ann", "bob"])
    (_, ann_enrollment, _), (bob, bob_enrollment, bob_first) = sent["ann"], sent["bob"]
    raw = inbound_mail(
        "reply_gmail", contact=bob.email, message_id=bob_first.message_id, token="bob1"
    )
    result = inbound.ingest(ctx, world.mailbox.id, raw, "uid-1")
    event = only_event(ctx, "reply")
    assert result.kind == "reply" and result.recorded
    assert [o.to_dict() for o in result.outcomes] == [
        {
            "event_id": event.id,
            "duplicate": False,
            "matched": True,
            "unenrolled": [bob_enrollment],
            "paused": [],
        }
    ]
    inbound_id = "<CAJx8-fYq3vbob1@mail.gmail.com>"
    assert event.dedupe_key == f"inbox:{world.mailbox.id}:{inbound_id}"
    assert (event.contact_id, event.message_id, event.enrollment_id) == (
        bob.id,
        bob_first.id,
        bob_enrollment,
    )
    assert event.data == {
        "source": "inbox",
        "mailbox_id": world.mailbox.id,
        "from": "bob@corp.example",
        "subject": "Re: Hi Ann",
        "inbound_message_id": inbound_id,
        "matched_by": "message_id",
        "unenrolled": [bob_enrollment],
        "paused": [],
    }
    assert enrollment(ctx, bob_enrollment).state == "unenrolled"
    assert enrollment(ctx, ann_enrollment).state == "active"
    # read again (an IMAP cursor reset): the same event, nothing new
    again = inbound.ingest(ctx, world.mailbox.id, raw, "uid-9")
    assert again.kind == "reply" and not again.recorded
    assert [o.event_id for o in again.outcomes] == [event.id]
    assert [e.id for e in events(ctx, "reply")] == [event.id]


def test_a_reply_matched_by_sender_names_no_message_and_keys_on_the_fallback(ctx, world, worker):
    [(ann, ann_enrollment, _)] = send_first_emails(ctx, world, worker, ["ann"]).values()
    # a new thread with no Message-ID at all, and a subject longer than we keep
    mail = EmailMessage()
    mail["From"] = f"Ann <{ann.email.upper()}>"
    mail["To"] = world.mailbox.from_email
    mail["Subject"] = "x" * 299 + "yz"
    mail.set_content("Can we talk?")
    result = inbound.ingest(ctx, world.mailbox.id, mail.as_bytes(), "INBOX:7:42")
    assert result.kind == "reply"
    event = only_event(ctx, "reply")
    assert result.outcomes[0].event_id == event.id
    assert event.dedupe_key == f"inbox:{world.mailbox.id}:INBOX:7:42"
    assert (event.contact_id, event.message_id, event.enrollment_id) == (ann.id, None, None)
    assert event.data == {
        "source": "inbox",
        "mailbox_id": world.mailbox.id,
        "from": "ann@corp.example",
        "subject": "x" * 299 + "y",
        "inbound_message_id": None,
        "matched_by": "sender",
        "unenrolled": [ann_enrollment],
        "paused": [],
    }
    assert enrollment(ctx, ann_enrollment).state == "unenrolled"
    # she is no longer live here: her next new thread is nobody's business
    mail.replace_header("Subject", "One more thing")
    assert inbound.ingest(ctx, world.mailbox.id, mail.as_bytes(), "INBOX:7:43").kind == "unrelated"
    assert len(events(ctx, "reply")) == 1


def test_a_reply_by_sender_ends_only_the_enrollment_sending_from_that_mailbox(ctx, world, worker):
    [(ann, here, _)] = send_first_emails(ctx, world, worker, ["ann"]).values()
    colleague = create_user(ctx, "cole@example.com", firstname="Cole")
    create_mailbox(ctx, colleague.id, "cole@example.com")
    other = create_sequence(ctx, colleague.id, "Cole's", steps=EMAIL_STEPS)
    # an installation that lets a contact be in two sequences at once
    multi = replace(
        ctx, settings=ctx.settings.model_copy(update={"allow_multiple_sequences": True})
    )
    [elsewhere] = enroll(multi, EnrollRequest(other.id, colleague.id, [ContactRequest(ann.id)]))
    assert elsewhere.ok, elsewhere.message
    fresh = inbound_mail("reply_new_thread", contact=ann.email, mailbox=world.mailbox.from_email)
    result = inbound.ingest(ctx, world.mailbox.id, fresh, "uid-1")
    assert result.outcomes[0].unenrolled == [here]
    assert enrollment(ctx, here).state == "unenrolled"
    assert enrollment(ctx, elsewhere.enrollment_id).state == "active"


def test_a_reply_names_the_message_of_this_mailbox_it_answers_not_another_one(ctx, world, worker):
    [(ann, ann_enrollment, first)] = send_first_emails(ctx, world, worker, ["ann"]).values()
    colleague = create_user(ctx, "cole@example.com", firstname="Cole")
    elsewhere = create_mailbox(ctx, colleague.id, "cole@example.com")
    # Ann answers our email, but the copy lands in a mailbox that never wrote to her
    raw = inbound_mail("reply_gmail", contact=ann.email, message_id=first.message_id)
    assert inbound.ingest(ctx, elsewhere.id, raw, "uid-1").kind == "unrelated"
    assert events(ctx) == []
    assert enrollment(ctx, ann_enrollment).state == "active"


def test_an_auto_reply_to_our_message_pauses_until_the_day_it_names(ctx, world, worker):
    [(ann, ann_enrollment, first)] = send_first_emails(ctx, world, worker, ["ann"]).values()
    raw = inbound_mail("ooo_en", contact=ann.email, message_id=first.message_id, token="t1")
    result = inbound.ingest(ctx, world.mailbox.id, raw, "uid-1")
    assert result.kind == "auto_reply"
    event = only_event(ctx, "auto_reply")
    assert result.outcomes[0].paused == [ann_enrollment]
    assert event.dedupe_key == f"inbox:{world.mailbox.id}:<t1.ooo@EXCH01.corp.example>"
    assert (event.contact_id, event.message_id, event.enrollment_id) == (
        ann.id,
        first.id,
        ann_enrollment,
    )
    assert event.data == {
        "source": "inbox",
        "mailbox_id": world.mailbox.id,
        "from": "ann@corp.example",
        "subject": "Automatic reply: Hi Ann",
        "inbound_message_id": "<t1.ooo@EXCH01.corp.example>",
        "matched_by": "message_id",
        "return_date": "2026-03-16",
        "unenrolled": [],
        "paused": [ann_enrollment],
    }
    paused = enrollment(ctx, ann_enrollment)
    assert paused.state == "paused"
    back = datetime(2026, 3, 16, tzinfo=ZoneInfo(paused.timezone))
    assert paused.resume_at.replace(tzinfo=UTC) == back.astimezone(UTC)


def test_an_auto_reply_naming_no_message_of_ours_is_recorded_and_changes_nothing(
    ctx, world, worker
):
    sent = send_first_emails(ctx, world, worker, ["bob", "ann"])
    (ann, ann_enrollment, _), (_, bob_enrollment, _) = sent["ann"], sent["bob"]
    raw = inbound_mail("ooo_no_date", contact=ann.email, token="t2")
    result = inbound.ingest(ctx, world.mailbox.id, raw, "uid-1")
    assert result.kind == "auto_reply" and result.recorded
    event = only_event(ctx, "auto_reply")
    assert result.outcomes[0].to_dict()["paused"] == []
    assert (event.contact_id, event.message_id, event.enrollment_id) == (
        ann.id,
        None,
        ann_enrollment,
    )
    assert event.enrollment_id != bob_enrollment
    assert event.data["unverified"] == "names no message this mailbox sent"
    assert event.data["matched_by"] == "sender"
    assert "return_date" not in event.data
    assert enrollment(ctx, ann_enrollment).state == "active"


def test_a_hard_bounce_of_our_message_marks_both_and_ends_the_enrollment(ctx, world, worker):
    [(ann, ann_enrollment, first)] = send_first_emails(ctx, world, worker, ["ann"]).values()
    raw = inbound_mail("dsn_postfix", contact=ann.email, message_id=first.message_id, token="b1")
    result = inbound.ingest(ctx, world.mailbox.id, raw, "uid-1")
    assert result.kind == "bounce"
    event = only_event(ctx, "bounce")
    assert [o.to_dict() for o in result.outcomes] == [
        {
            "event_id": event.id,
            "duplicate": False,
            "matched": True,
            "unenrolled": [ann_enrollment],
            "paused": [],
        }
    ]
    inbound_id = "<20260302090501.b1@mail.example.com>"
    assert event.dedupe_key == f"inbox:{world.mailbox.id}:{inbound_id}:ann@corp.example"
    assert (event.contact_id, event.message_id, event.enrollment_id) == (
        ann.id,
        first.id,
        ann_enrollment,
    )
    assert event.data == {
        "source": "inbox",
        "mailbox_id": world.mailbox.id,
        "hard": True,
        "status": "5.1.1",
        "recipient": "ann@corp.example",
        "diagnostic": "smtp; 550 5.1.1 <ann@corp.example>: Recipient address rejected: "
        "User unknown in virtual mailbox table",
        "rfc3464": True,
        "inbound_message_id": inbound_id,
        "unenrolled": [ann_enrollment],
        "paused": [],
    }
    now = ctx.clock.now().replace(tzinfo=None)
    assert message_row(ctx, first.id).bounced_at.replace(tzinfo=None) == now
    assert contact_row(ctx, ann.id).bounced_at.replace(tzinfo=None) == now
    assert enrollment(ctx, ann_enrollment).state == "unenrolled"


def test_a_delay_notice_is_a_soft_bounce_that_marks_nothing(ctx, world, worker):
    [(ann, ann_enrollment, first)] = send_first_emails(ctx, world, worker, ["ann"]).values()
    raw = inbound_mail("dsn_delayed", contact=ann.email, message_id=first.message_id)
    result = inbound.ingest(ctx, world.mailbox.id, raw, "uid-1")
    assert result.kind == "soft_bounce"
    event = only_event(ctx, "bounce")
    assert result.outcomes[0].event_id == event.id
    assert (event.message_id, event.data["hard"], event.data["status"]) == (
        first.id,
        False,
        "4.4.1",
    )
    assert "unverified" not in event.data
    assert message_row(ctx, first.id).bounced_at is None
    assert contact_row(ctx, ann.id).bounced_at is None
    assert enrollment(ctx, ann_enrollment).state == "active"


def test_a_bounce_naming_no_message_of_ours_is_recorded_against_the_contact_only(
    ctx, world, worker
):
    sent = send_first_emails(ctx, world, worker, ["bob", "ann"])
    (ann, ann_enrollment, first), (_, bob_enrollment, _) = sent["ann"], sent["bob"]
    raw = inbound_mail("dsn_postfix", contact=ann.email, token="b2")  # quotes an unknown id
    result = inbound.ingest(ctx, world.mailbox.id, raw, "uid-1")
    assert result.kind == "bounce"
    event = only_event(ctx, "bounce")
    assert result.outcomes[0].event_id == event.id
    assert (event.contact_id, event.message_id, event.enrollment_id) == (
        ann.id,
        None,
        ann_enrollment,
    )
    assert event.enrollment_id != bob_enrollment
    assert event.data["unverified"] == "names no message this mailbox sent"
    assert event.data["recipient"] == "ann@corp.example"
    assert contact_row(ctx, ann.id).bounced_at is None
    assert message_row(ctx, first.id).bounced_at is None
    assert enrollment(ctx, ann_enrollment).state == "active"


def test_a_bounce_about_nobody_we_know_records_nothing(ctx, world, worker):
    send_first_emails(ctx, world, worker, ["ann"])
    raw = inbound_mail("dsn_postfix", contact="nobody@elsewhere.example")
    result = inbound.ingest(ctx, world.mailbox.id, raw, "uid-1")
    assert (result.kind, result.outcomes) == ("unrelated", ())
    assert events(ctx, "bounce") == []


def test_each_failed_recipient_of_a_report_is_its_own_event(ctx, world, worker):
    [(ann, ann_enrollment, first)] = send_first_emails(ctx, world, worker, ["ann"]).values()
    long_reason = "smtp; 550 " + "z" * 600
    raw = dsn(
        world.mailbox.from_email,
        [
            ("rfc822; stranger@elsewhere.example", "5.1.1", "failed", "smtp; 550 no"),
            ("rfc822;", "5.2.2", "failed", None),  # a report that lost the address
            (f"rfc822; {ann.email}", "5.1.1", "failed", long_reason),
        ],
        original_message_id=first.message_id,
    )
    result = inbound.ingest(ctx, world.mailbox.id, raw, "uid-1")
    assert result.kind == "bounce"
    nameless, about_ann = events(ctx, "bounce")
    assert [o.event_id for o in result.outcomes] == [nameless.id, about_ann.id]
    inbound_id = nameless.data["inbound_message_id"]
    key = f"inbox:{world.mailbox.id}:{inbound_id}"
    # the stranger is nobody's; the nameless one and Ann's are about our message to Ann
    assert nameless.dedupe_key == f"{key}:-"
    assert about_ann.dedupe_key == f"{key}:ann@corp.example"
    for event in (nameless, about_ann):
        assert (event.contact_id, event.message_id) == (ann.id, first.id)
        assert "unverified" not in event.data
    assert (nameless.data["recipient"], nameless.data["status"]) == (None, "5.2.2")
    assert nameless.data["diagnostic"] is None
    assert about_ann.data["diagnostic"] == long_reason[:500]
    assert nameless.data["rfc3464"] is True
    assert enrollment(ctx, ann_enrollment).state == "unenrolled"
