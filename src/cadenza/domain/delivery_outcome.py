"""What a delivery attempt can come to; the engine's transports report it, services record it.

A refusal is read for whom it blames. A refusal of the recipient (no such user, mailbox
full) fails that one step. A refusal of the *sending mailbox* — its credentials, its
sender address, relaying for it, its domain's SPF/DKIM/DMARC, the sending host being
listed — would refuse every other email of the mailbox just the same: failing them one
by one would end every enrollment it sends for. Those are reported as AUTH_FAILED (the
mailbox is disconnected with the server's words, and its steps wait until someone fixes
and reconnects it): the circuit breaker of docs/mailboxes.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class DeliveryOutcome(StrEnum):
    SENT = "sent"  # the server accepted the message
    TRANSIENT = "transient"  # 4xx or a connection problem before the message was handed over
    PERMANENT = "permanent"  # 5xx about this message or recipient: retrying will not help
    # The mailbox itself was refused (credentials, sender, relaying, policy): it is
    # disconnected and its steps wait; the stored value keeps its first name.
    AUTH_FAILED = "auth_failed"
    UNKNOWN = "unknown"  # the message was handed over but no answer came: never resend


@dataclass(frozen=True)
class DeliveryResult:
    outcome: DeliveryOutcome
    code: int | None
    reply: str

    @property
    def reply_line(self) -> str:
        """The server's answer as a message keeps it (`smtp_reply`): code and words."""
        return f"{self.code or ''} {self.reply}".strip()


# Enhanced status codes (RFC 3463) about the recipient's mailbox or address: that step
# alone fails, whatever the text says. 5.1.7 and 5.1.8 are the *sender's* address.
_RECIPIENT_STATUS = re.compile(r"\b5\.(?:1\.(?:[0-6]|9|10)|2\.[0-4]|3\.4)\b")
# About the sender: authentication (5.7.0, 5.7.8, 5.7.9, 5.7.14), the sender's address
# (5.1.7, 5.1.8), its domain's SPF/DKIM/DMARC or null MX (5.7.23 to 5.7.27).
_MAILBOX_STATUS = re.compile(r"\b5\.(?:7\.(?:0|8|9|14|2[3-7])|1\.[78])\b")
# The common shapes of the same, from servers that send no enhanced code or 5.7.1.
_MAILBOX_WORDS = re.compile(
    r"relay(?:ing)?\s+(?:access\s+)?(?:denied|not\s+(?:permitted|allowed)|prohibited)"
    r"|not\s+(?:allowed|authori[sz]ed|permitted)\s+to\s+(?:send|relay)"
    r"|sender\s+(?:address\s+)?(?:rejected|refused|denied|not\s+(?:allowed|authori[sz]ed))"
    r"|authentication\s+required|must\s+(?:be\s+)?authenticate"
    r"|client\s+host\s+\S*\s*rejected|blocked\s+using|\bblacklisted\b|\bblocklisted\b",
    re.IGNORECASE,
)


def refusal(code: int, reply: str, stage: str) -> DeliveryOutcome:
    """The outcome of a 4xx/5xx reply at `stage` (MAIL, RCPT, DATA, end of DATA)."""
    if not 500 <= code < 600:
        return DeliveryOutcome.TRANSIENT
    if code == 530:  # "authentication required", also "STARTTLS first": the settings
        return DeliveryOutcome.AUTH_FAILED
    if _RECIPIENT_STATUS.search(reply):
        return DeliveryOutcome.PERMANENT
    if stage == "MAIL" and code != 552:  # the sender refused (552: the message's size)
        return DeliveryOutcome.AUTH_FAILED
    if _MAILBOX_STATUS.search(reply) or _MAILBOX_WORDS.search(reply):
        return DeliveryOutcome.AUTH_FAILED
    return DeliveryOutcome.PERMANENT
