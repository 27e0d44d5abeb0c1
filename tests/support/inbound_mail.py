"""The real-shaped inbound messages in tests/fixtures/inbound, filled in for a test.

Placeholders: $contact (the sender or failed recipient), $mailbox (our address),
$message_id and $subject (of the email we sent), $date, and $token (makes the
message's own Message-ID unique).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from string import Template

FIXTURES = Path(__file__).parent.parent / "fixtures" / "inbound"


def inbound_mail(name: str, **values: str) -> bytes:
    values.setdefault("mailbox", "rep@example.com")
    values.setdefault("contact", "ann@corp.example")
    values.setdefault("message_id", "<unknown@cadenza.example>")
    values.setdefault("subject", "Hi Ann")
    values.setdefault("date", format_datetime(datetime(2026, 3, 2, 12, 0, tzinfo=UTC)))
    values.setdefault("token", uuid.uuid4().hex[:12])
    text = Template((FIXTURES / f"{name}.eml").read_text(encoding="utf-8")).substitute(values)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
