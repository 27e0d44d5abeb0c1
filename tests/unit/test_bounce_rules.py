"""The rules of bounce classification one by one (domain/inbound/bounce.py).

The real-shaped fixtures in test_inbound.py carry a Status field and a clear verdict;
these small notices each hinge on one rule that could once be broken unnoticed: a
5.x.x status with Action `delayed`, a report with no Status field, the temporary or
permanent wording of a plain-text notice, and an SMTP code read from its text.
"""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from cadenza.domain.inbound.bounce import BouncedRecipient, detect_bounce
from cadenza.domain.inbound.parse import Inbound, parse

OURS = "<20260302090000.abc123@example.com>"


def report(*recipient_fields: str) -> bytes:
    """A multipart/report DSN with one per-recipient block made of the given fields."""
    block = "\r\n".join(["Final-Recipient: rfc822; gone@corp.example", *recipient_fields])
    return (
        "From: MAILER-DAEMON@mail.example.com\r\n"
        "To: rep@example.com\r\n"
        "Subject: Delivery Status Notification\r\n"
        "Message-ID: <dsn.1@mail.example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nA notice.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mail.example.com\r\n\r\n"
        f"{block}\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {OURS}\r\n"
        "--B--\r\n"
    ).encode()


def notice(text: str) -> bytes:
    """A plain-text notice from a mailer daemon, without a report (Exim's, small servers')."""
    return (
        "From: Mail Delivery System <mailer-daemon@mail.example.com>\r\n"
        "To: rep@example.com\r\n"
        "Subject: Mail delivery failed: returning message to sender\r\n"
        "Message-ID: <notice.1@mail.example.com>\r\n"
        "X-Failed-Recipients: gone@corp.example\r\n"
        "\r\n"
        f"{text}\r\n"
    ).encode()


@pytest.mark.parametrize("action", ["delayed", "relayed"])
def test_a_5xx_status_is_not_hard_when_the_report_says_delayed_or_relayed(action):
    bounce = detect_bounce(parse(report(f"Action: {action}", "Status: 5.4.7")))
    assert bounce.standard and bounce.status == "5.4.7"
    assert bounce.recipients[0].action == action
    assert not bounce.hard


def test_a_5xx_status_with_action_failed_is_hard():
    bounce = detect_bounce(parse(report("Action: failed", "Status: 5.4.7")))
    assert bounce.hard and bounce.original_message_id == OURS


@pytest.mark.parametrize(
    ("fields", "status", "hard"),
    [
        (["Action: failed"], "5.0.0", True),
        (["Action: delayed"], "4.0.0", False),
        (["Action: failed", "Diagnostic-Code: smtp; 452 4.2.2 mailbox full"], "4.2.2", False),
        (["Action: delayed", "Diagnostic-Code: smtp; 550 5.1.1 no such user"], "5.1.1", False),
    ],
)
def test_a_report_without_a_status_field_reads_the_diagnostic_or_the_action(fields, status, hard):
    bounce = detect_bounce(parse(report(*fields)))
    assert bounce.standard
    assert (bounce.status, bounce.hard) == (status, hard)
    assert [r.address for r in bounce.recipients] == ["gone@corp.example"]


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("The message was temporarily deferred; delivery will be retried.", "4.0.0"),
        ("Your message has not yet been delivered to gone@corp.example.", "4.0.0"),
        ("A permanent error occurred: the address is not known.", "5.0.0"),
        ("Delivery was delayed and then failed: permanent failure.", "5.0.0"),  # both: hard
        ("Something went wrong with gone@corp.example.", "5.0.0"),  # no clue: hard
    ],
)
def test_the_wording_of_a_plain_notice_decides_temporary_or_permanent(text, status):
    bounce = detect_bounce(parse(notice(text)))
    assert not bounce.standard
    assert bounce.status == status and bounce.hard is status.startswith("5")
    assert [r.address for r in bounce.recipients] == ["gone@corp.example"]


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("SMTP error from remote mail server after RCPT TO:\n  421 too busy", "4.0.0"),
        ("The server answered: 550-mailbox unavailable, temporarily or not", "5.0.0"),
        ("The server answered: 452 try again later", "4.0.0"),
    ],
)
def test_an_smtp_code_in_the_text_outranks_the_wording(text, status):
    bounce = detect_bounce(parse(notice(text)))
    assert bounce.status == status
    assert bounce.hard is status.startswith("5")


def test_an_enhanced_code_in_the_text_outranks_an_smtp_code():
    bounce = detect_bounce(parse(notice("550 rejected: 4.7.1 greylisted, try later")))
    assert bounce.status == "4.7.1" and not bounce.hard
    assert bounce.recipients[0].diagnostic == "550 rejected: 4.7.1 greylisted, try later"


def test_a_report_naming_only_the_original_recipient_is_read():
    raw = report("Action: failed", "Status: 5.1.1", "Diagnostic-Code: smtp; 550 5.1.1  no such")
    raw = raw.replace(
        b"Final-Recipient: rfc822; gone@corp.example",
        b"Original-Recipient: rfc822;<Gone@Corp.example>",
    )
    [recipient] = detect_bounce(parse(raw)).recipients
    assert recipient.address == "gone@corp.example"
    assert recipient.diagnostic == "smtp; 550 5.1.1 no such"  # kept, whitespace folded


def test_a_report_without_an_action_is_hard_on_a_5xx_status():
    [recipient] = detect_bounce(parse(report("Status: 5.2.1"))).recipients
    assert recipient.action is None and recipient.diagnostic is None and recipient.hard


def daemon_notice(sender: str, subject: str, text: str, *, with_from: bool = True) -> bytes:
    """A notice with no X-Failed-Recipients: only who sent it and its subject tell."""
    head = f"From: {sender}\r\n" if with_from else f"Sender: {sender}\r\n"
    return (
        f"{head}To: Riley <rep@example.com>\r\nSubject: {subject}\r\n"
        "Message-ID: <notice.2@mail.example.com>\r\n\r\n"
        f"{text}\r\n"
    ).encode()


TEXT = (
    "Your message to <gone@corp.example> from rep@example.com could not be delivered.\r\n"
    f"Message-ID: {OURS}\r\n"
)


@pytest.mark.parametrize("sender", ["MAILER-DAEMON@mail.example.com", "postmaster@corp.example"])
def test_a_daemons_notice_names_the_addresses_in_its_text_but_not_ours(sender):
    bounce = detect_bounce(parse(daemon_notice(sender, "Undeliverable: Hi Ann", TEXT)))
    assert not bounce.standard and bounce.hard
    assert [r.address for r in bounce.recipients] == ["gone@corp.example"]
    assert bounce.original_message_id == OURS


def test_a_person_writing_undeliverable_in_a_subject_is_not_a_bounce():
    raw = daemon_notice("ann@corp.example", "Undeliverable: Hi Ann", TEXT)
    assert detect_bounce(parse(raw)) is None


def test_a_daemon_writing_about_something_else_is_not_a_bounce():
    raw = daemon_notice("mailer-daemon@mail.example.com", "Your weekly digest", TEXT)
    assert detect_bounce(parse(raw)) is None


def test_a_notice_without_a_from_header_is_read_by_its_subject():
    raw = daemon_notice(
        "relay@mail.example.com", "Returned mail: see transcript", TEXT, with_from=False
    )
    bounce = detect_bounce(parse(raw))
    assert [r.address for r in bounce.recipients] == ["gone@corp.example"]


def test_the_returned_headers_outrank_an_id_quoted_in_the_notice():
    """The notice's own text may quote other ids (its queue's); the returned headers
    name what bounced."""
    raw = report("Action: failed", "Status: 5.1.1").replace(
        b"A notice.", b"Message-ID: <queue.77@mail.example.com> was not delivered."
    )
    assert detect_bounce(parse(raw)).original_message_id == OURS


def test_returned_headers_that_are_not_utf8_are_read_anyway():
    raw = report("Action: failed", "Status: 5.1.1").replace(
        f"Message-ID: {OURS}".encode(), f"Subject: Caf\xe9\r\nMessage-ID: {OURS}".encode("latin-1")
    )
    assert detect_bounce(parse(raw)).original_message_id == OURS


def test_a_report_without_the_returned_message_falls_back_to_an_id_quoted_in_its_text():
    raw = report("Action: failed", "Status: 5.1.1")
    raw = raw.replace(
        b"Content-Type: text/rfc822-headers\r\n\r\n", b"Content-Type: text/plain\r\n\r\n"
    )
    raw = raw.replace(f"Message-ID: {OURS}".encode(), f"Message-Id: {OURS}".encode())
    bounce = detect_bounce(parse(raw))
    assert bounce.standard and bounce.original_message_id == OURS


def test_a_quoted_id_is_ours_only_if_it_is_not_the_notices_own_nor_malformed():
    text = (
        "Message-ID: <notice.1@mail.example.com>\r\n"  # the notice's own, quoted back
        "Message-ID: <no-at-sign>\r\n"
        f"Message-ID: {OURS}\r\n"
    )
    assert detect_bounce(parse(notice(text))).original_message_id == OURS


def test_a_notice_that_is_not_utf8_is_read_anyway():
    raw = notice("Zustellung fehlgeschlagen: Empf\xe4nger unbekannt (550 5.1.1)")
    raw = raw.replace("\xe4".encode(), "\xe4".encode("latin-1"))
    bounce = detect_bounce(parse(raw + f"Message-ID: {OURS}\r\n".encode()))
    assert bounce.status == "5.1.1" and bounce.original_message_id == OURS


def test_x_failed_recipients_alone_marks_a_bounce_and_lists_every_recipient():
    raw = (
        b"From: Bounces <bounces@mail.example.com>\r\n"  # no daemon, no bounce subject
        b"To: rep@example.com\r\nSubject: Message not delivered\r\n"
        b"X-Failed-Recipients: Gone@Corp.example, other@corp.example\r\n\r\n"
        b"550 5.1.1 unknown user\r\n"
    )
    bounce = detect_bounce(parse(raw))
    assert [r.address for r in bounce.recipients] == ["gone@corp.example", "other@corp.example"]


def test_at_most_twenty_recipients_are_read_from_a_notices_text():
    addresses = [f"gone{n}@corp.example" for n in range(25)]
    raw = daemon_notice("mailer-daemon@mail.example.com", "Undeliverable", "\r\n".join(addresses))
    assert [r.address for r in detect_bounce(parse(raw)).recipients] == addresses[:20]


def test_a_notice_naming_no_recipient_is_one_bounce_of_an_unknown_address():
    raw = daemon_notice(
        "mailer-daemon@mail.example.com", "Undeliverable", "Delivery failed: 550 5.2.2 full"
    )
    bounce = detect_bounce(parse(raw))
    assert bounce.recipients == (
        BouncedRecipient(None, "5.2.2", None, "Delivery failed: 550 5.2.2 full"),
    )


def test_a_recipients_address_is_read_without_brackets_in_lower_case():
    raw = report("Action: failed", "Status: 5.1.1").replace(
        b"rfc822; gone@corp.example", b"rfc822; <Xavier.Gone@Corp.example>"
    )
    assert detect_bounce(parse(raw)).recipients[0].address == "xavier.gone@corp.example"


def test_a_report_whose_status_part_is_one_text_is_read_block_by_block():
    """A message built in memory (not parsed) may hold message/delivery-status as text."""
    status = EmailMessage()
    status["Content-Type"] = "message/delivery-status"
    status.set_payload(
        "Reporting-MTA: dns; mail.example.com\r\n\r\n"
        "Final-Recipient: rfc822; gone@corp.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "Final-Recipient: rfc822; away@corp.example\r\nAction: delayed\r\nStatus: 4.2.2\r\n"
    )
    message = EmailMessage()
    message["From"] = "MAILER-DAEMON@mail.example.com"
    message["Subject"] = "Delivery Status Notification"
    message.set_type("multipart/report")
    message.attach(status)
    inbound = Inbound(None, "mailer-daemon@mail.example.com", "DSN", (), (), None, "", message)
    bounce = detect_bounce(inbound)
    assert bounce.standard
    assert [(r.address, r.status, r.hard) for r in bounce.recipients] == [
        ("gone@corp.example", "5.1.1", True),
        ("away@corp.example", "4.2.2", False),
    ]


def test_the_recipient_type_ends_at_the_first_semicolon():
    """`rfc822; "a;b"@corp.example`: the address may itself hold a ";" (quoted)."""
    quoted = report("Action: failed", "Status: 5.1.1").replace(
        b"Final-Recipient: rfc822; gone@corp.example",
        b'Final-Recipient: rfc822; "a;b"@corp.example',
    )
    [recipient] = detect_bounce(parse(quoted)).recipients
    assert recipient.address == '"a;b"@corp.example'


def test_a_recipient_without_a_type_is_read_whole():
    bare = report("Action: failed", "Status: 5.1.1").replace(
        b"Final-Recipient: rfc822; gone@corp.example", b"Final-Recipient: Gone@Corp.example"
    )
    [recipient] = detect_bounce(parse(bare)).recipients
    assert recipient.address == "gone@corp.example"
