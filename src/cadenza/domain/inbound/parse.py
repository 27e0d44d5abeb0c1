"""One received message, reduced to what classification looks at."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from typing import cast

from cadenza.domain.message import html_to_text

MESSAGE_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>")


@dataclass(frozen=True)
class Inbound:
    message_id: str | None
    sender: str | None  # lower-cased address from From:
    subject: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    date: datetime | None
    text: str  # the readable body: text/plain, else text/html made plain
    message: EmailMessage

    def header(self, name: str) -> str:
        return str(self.message.get(name, "") or "").strip()  # pragma: no mutate: default unused

    @property
    def referenced_ids(self) -> tuple[str, ...]:
        """Our Message-IDs this one may answer, the most direct first.

        In-Reply-To names the message answered; References the whole thread, newest
        last. Clients that drop References (some Outlook versions) still keep one.
        """
        seen: dict[str, None] = {}
        for message_id in (*self.in_reply_to, *reversed(self.references)):
            seen.setdefault(message_id, None)
        return tuple(seen)


def message_ids(value: object) -> tuple[str, ...]:
    return tuple(MESSAGE_ID.findall(str(value or "")))  # pragma: no mutate: no id in XXXX


def parse(raw: bytes) -> Inbound:
    """Never raises on malformed mail: a broken header just reads as missing."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    sender = None  # pragma: no mutate: set in the try below
    try:
        addresses = [a for _, a in getaddresses([_header_text(message, "From")]) if "@" in a]
        sender = addresses[0].lower() if addresses else None  # pragma: no mutate
    except (ValueError, IndexError, TypeError):
        sender = None
    try:
        date = parsedate_to_datetime(_header_text(message, "Date"))  # pragma: no mutate
    except (TypeError, ValueError, IndexError):
        date = None
    own_ids = message_ids(_safe_header(message, "Message-ID"))  # pragma: no mutate
    return Inbound(
        message_id=own_ids[0] if own_ids else None,
        sender=sender,
        subject=_safe_header(message, "Subject"),  # pragma: no mutate: header names ignore case
        in_reply_to=message_ids(_safe_header(message, "In-Reply-To")),  # pragma: no mutate
        references=message_ids(_safe_header(message, "References")),  # pragma: no mutate
        date=date if date is None or date.tzinfo else None,
        text=readable_text(message),
        message=message,
    )


def _safe_header(message: EmailMessage, name: str) -> str:
    return " ".join(_header_text(message, name).split())


def _header_text(message: EmailMessage, name: str) -> str:
    """The header's text, or its raw text when the stdlib's parser fails on it.

    The parser of `email.policy.default` raises on some broken headers, and not only
    ValueError: `Message-ID: <a@[` and `From: <a@[` raise UnboundLocalError and
    AttributeError from inside it. A reply must not be lost to that, so any error falls
    back to the header as it was written (unparsed), or to nothing."""
    try:
        return str(message.get(name, "") or "")  # pragma: no mutate: default unused (or)
    except Exception:
        for key, value in message.raw_items():
            if key.lower() == name.lower():
                return str(value)
        return ""  # pragma: no mutate: unreached: get raised, so the header is there


def readable_text(message: EmailMessage) -> str:
    """The first text/plain part not inside an attached message, else the HTML's text."""
    plain: list[str] = []
    html: list[str] = []
    for part in _parts(message):
        kind = part.get_content_type()
        if kind not in ("text/plain", "text/html") or part.get_filename():
            continue
        try:
            content = part.get_content()
        except (LookupError, ValueError, AssertionError):
            raw = cast(bytes | None, part.get_payload(decode=True))  # pragma: no mutate
            content = (raw or b"").decode("utf-8", "replace")  # pragma: no mutate: see docs
        (plain if kind == "text/plain" else html).append(content)
    if plain:
        return "\n".join(plain)
    return "\n".join(html_to_text(h) for h in html)


def _parts(message: EmailMessage) -> Iterator[EmailMessage]:
    """Walks the message's own parts, not those of messages attached to it (a DSN's copy)."""
    if message.is_multipart():
        for part in cast(list[EmailMessage], message.get_payload()):  # pragma: no mutate
            if part.get_content_type() in ("message/rfc822", "message/delivery-status"):
                continue
            yield from _parts(part)
    else:
        yield message
