"""Whom an SMTP refusal blames (domain.delivery_outcome.refusal): the recipient or the
message (the step fails) or the sending mailbox itself (it is paused, nothing fails)."""

from __future__ import annotations

import pytest

from cadenza.domain.delivery_outcome import DeliveryOutcome, refusal

MAILBOX = DeliveryOutcome.AUTH_FAILED
STEP = DeliveryOutcome.PERMANENT


@pytest.mark.parametrize(
    ("code", "reply", "stage", "expected"),
    [
        # The recipient or this message: that step alone fails.
        (550, "5.1.1 <ann@corp.example>: Recipient address rejected: User unknown", "RCPT", STEP),
        (550, "5.1.10 RESOLVER.ADR.RecipientNotFound", "RCPT", STEP),
        (552, "5.2.2 Mailbox full", "RCPT", STEP),
        (550, "5.2.1 The email account that you tried to reach is disabled", "RCPT", STEP),
        (554, "5.7.1 Message rejected as spam by Content Filtering", "end of DATA", STEP),
        (550, "Requested action not taken: mailbox unavailable", "RCPT", STEP),
        (552, "5.3.4 Message size exceeds fixed limit", "MAIL", STEP),
        (552, "Message size exceeds maximum permitted", "MAIL", STEP),
        # A recipient code wins over words that would blame the sender.
        (550, "5.1.1 sender address rejected? no: user unknown", "RCPT", STEP),
        # The sending mailbox: every other email would be refused the same way.
        (530, "5.7.0 Authentication required", "MAIL", MAILBOX),
        (535, "5.7.8 Username and Password not accepted", "MAIL", MAILBOX),
        (550, "5.7.1 Sender address rejected: not owned by user rep@corp.example", "MAIL", MAILBOX),
        (553, "Sender address rejected: Domain not found", "MAIL", MAILBOX),
        (550, "5.1.8 Bad sender's mailbox address syntax", "MAIL", MAILBOX),
        (550, "any refusal of the sender at MAIL FROM", "MAIL", MAILBOX),
        (554, "5.7.1 <ann@corp.example>: Relay access denied", "RCPT", MAILBOX),
        (550, "relaying denied", "RCPT", MAILBOX),
        (550, "5.7.1 Client host [192.0.2.7] blocked using zen.example", "RCPT", MAILBOX),
        (
            550,
            "5.7.26 Unauthenticated email from corp.example is not accepted (DMARC)",
            "end of DATA",
            MAILBOX,
        ),
        (550, "5.7.23 SPF validation failed", "end of DATA", MAILBOX),
        (550, "5.7.1 You are not authorized to send as this user", "RCPT", MAILBOX),
        (554, "Your IP is blacklisted", "DATA", MAILBOX),
        # 4xx: it may pass later, whoever it blames.
        (451, "4.7.1 Greylisted, try again later", "RCPT", DeliveryOutcome.TRANSIENT),
        (421, "4.3.2 Service shutting down", "MAIL", DeliveryOutcome.TRANSIENT),
        (454, "4.7.0 Temporary authentication failure", "MAIL", DeliveryOutcome.TRANSIENT),
    ],
)
def test_whom_a_refusal_blames(code, reply, stage, expected):
    assert refusal(code, reply, stage) is expected


def test_a_code_outside_4xx_and_5xx_is_never_a_refusal_for_good():
    assert refusal(250, "5.7.1 relay access denied", "RCPT") is DeliveryOutcome.TRANSIENT
    assert refusal(600, "relay access denied", "RCPT") is DeliveryOutcome.TRANSIENT
