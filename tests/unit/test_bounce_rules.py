"""The rules of bounce classification one by one (domain/inbound/bounce.py).

The real-shaped fixtures in test_inbound.py carry a Status field and a clear verdict;
these small notices each hinge on one rule that could once be broken unnoticed: a
5.x.x status with Action `delayed`, a report with no Status field, the temporary or
permanent wording of a plain-text notice, and an SMTP code read from its text.
"""

from __future__ import annotations

import pytest

from cadenza.domain.inbound.bounce import detect_bounce
from cadenza.domain.inbound.parse import parse

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
