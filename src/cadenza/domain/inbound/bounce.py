"""Bounces: RFC 3464 delivery status notifications, and the common forms that are not.

Postfix, Gmail and Exchange send multipart/report DSNs; Exim's classic notice (and
many small servers) send plain text with `X-Failed-Recipients` or a mailer-daemon
sender. Either way the outcome is per recipient: a 5.x.x status is permanent (hard),
a 4.x.x one temporary (soft).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from typing import cast

from cadenza.domain.inbound.parse import MESSAGE_ID, Inbound, message_ids

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"(?:^|\s)([45])(\d\d)[\s-]")
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_ID_LINES = re.compile(r"^[ \t>]*(message-id|in-reply-to|references):.*$", re.I | re.M)
_DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon")
_SUBJECTS = re.compile(
    r"undeliver|undelivered mail|delivery status notification|mail delivery (failed|failure|"
    r"subsystem)|returned mail|failure notice|delivery (has )?failed|could not be delivered|"
    r"nicht zustellbar|unzustellbar|non recapitabile|mancato recapito|non remis|"
    r"échec de la remise|delivery delayed|warning: message",
    re.IGNORECASE,
)
_PERMANENT_WORDS = re.compile(r"permanent(ly)? (error|failure|fatal)|could not be delivered", re.I)
_TEMPORARY_WORDS = re.compile(r"temporar|delayed|will (be )?retr|not yet been delivered", re.I)


@dataclass(frozen=True)
class BouncedRecipient:
    address: str | None
    status: str  # enhanced status code, e.g. "5.1.1"
    action: str | None = None
    diagnostic: str | None = None

    @property
    def hard(self) -> bool:
        return self.status.startswith("5") and self.action not in ("delayed", "relayed")


@dataclass(frozen=True)
class Bounce:
    recipients: tuple[BouncedRecipient, ...]
    original_message_id: str | None  # the Message-ID of what bounced, when quoted
    standard: bool  # an RFC 3464 report, not a guess from text

    @property
    def hard(self) -> bool:
        return any(r.hard for r in self.recipients)

    @property
    def status(self) -> str:
        hard = [r for r in self.recipients if r.hard]
        return (hard or list(self.recipients))[0].status


def detect_bounce(inbound: Inbound) -> Bounce | None:
    report = _delivery_status(inbound.message)
    if report is not None:
        recipients = tuple(_dsn_recipient(block) for block in report[1:] if _is_recipient(block))
        if recipients:
            return Bounce(recipients, _original_id(inbound), standard=True)
    if not _looks_like_bounce(inbound):
        return None
    return _from_text(inbound)


def _delivery_status(message: Message) -> list[Message] | None:
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            if isinstance(payload, list):
                return cast(list[Message], payload)  # pragma: no mutate
            # Some servers send it as a single-part body: parse the header blocks ourselves.
            text = payload if isinstance(payload, str) else ""  # pragma: no mutate
            return [HeaderParser().parsestr(b) for b in re.split(r"\r?\n\s*\r?\n", text)]
    return None


def _is_recipient(block: Message) -> bool:
    return bool(
        block.get("Final-Recipient") or block.get("Original-Recipient")  # pragma: no mutate
    )


def _dsn_recipient(block: Message) -> BouncedRecipient:
    recipient = str(
        block.get("Final-Recipient") or block.get("Original-Recipient") or ""  # pragma: no mutate
    )
    # "rfc822; address": the type ends at the first ";" (a quoted local part may hold one).
    kind, separator, address = recipient.partition(";")
    if not separator:
        address = kind
    action = str(block.get("Action", "") or "").strip().lower() or None  # pragma: no mutate
    diagnostic = (
        " ".join(str(block.get("Diagnostic-Code", "") or "").split()) or None  # pragma: no mutate
    )
    found = (
        _STATUS.search(str(block.get("Status", "") or ""))  # pragma: no mutate: case; or
        or _STATUS.search(diagnostic or "")  # pragma: no mutate: no status in XXXX
    )
    # A Status field is required, but be kind to servers that forget it.
    fallback = "4.0.0" if action == "delayed" else "5.0.0"
    status = found.group(0) if found else fallback
    return BouncedRecipient(
        address=address.strip().strip("<>").lower() or None,
        status=status,
        action=action,
        diagnostic=diagnostic,
    )


def _original_id(inbound: Inbound) -> str | None:
    """The Message-ID in the returned message or its headers (message/rfc822 or
    text/rfc822-headers), else one quoted in the text of the notice."""
    for part in inbound.message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            inner = cast(Message, payload[0]) if isinstance(payload, list) and payload else None
            found = message_ids(inner.get("Message-ID")) if inner is not None else ()
            if found:
                return found[0]
        elif kind == "text/rfc822-headers":
            raw = (cast(bytes | None, part.get_payload(decode=True)) or b"").decode(
                "utf-8",  # pragma: no mutate: codec names ignore case
                "replace",
            )
            headers = HeaderParser().parsestr(raw)
            found = message_ids(headers.get("Message-ID"))  # pragma: no mutate
            if found:
                return found[0]
    return _quoted_id(inbound)


def _quoted_id(inbound: Inbound) -> str | None:
    for match in re.finditer(r"Message-ID:\s*(<[^<>\s]+>)", _all_text(inbound), re.IGNORECASE):
        if MESSAGE_ID.fullmatch(match.group(1)) and match.group(1) != inbound.message_id:
            return match.group(1)
    return None


def _all_text(inbound: Inbound) -> str:
    chunks = []
    for part in inbound.message.walk():
        if part.get_content_maintype() == "text":
            body = cast(bytes | None, part.get_payload(decode=True))  # pragma: no mutate
            chunks.append((body or b"").decode("utf-8", "replace"))
    return "\n".join(chunks)


def _looks_like_bounce(inbound: Inbound) -> bool:
    if inbound.header("X-Failed-Recipients"):  # pragma: no mutate: header names ignore case
        return True
    local = (inbound.sender or "").partition("@")[0]
    from_daemon = local in _DAEMONS or not inbound.header("From")  # pragma: no mutate: case
    return from_daemon and bool(_SUBJECTS.search(inbound.subject))


def _from_text(inbound: Inbound) -> Bounce:
    """A notice without a report: recipients from X-Failed-Recipients or the text,
    the status from an enhanced code, an SMTP code, or the words used."""
    text = inbound.text
    failed = [a.strip().lower() for a in inbound.header("X-Failed-Recipients").split(",")]
    failed = [a for a in failed if "@" in a]
    if not failed:
        own = {inbound.sender, *(a.lower() for a in _ADDRESS.findall(inbound.header("To")))}
        # A quoted Message-ID (<id@host>) has an address's shape but names no recipient.
        addresses = _ADDRESS.findall(_ID_LINES.sub("", text))
        quoted = dict.fromkeys(a.lower() for a in addresses)
        failed = [a for a in quoted if a not in own]
    status = _status_from_text(text)
    diagnostic = next((line.strip() for line in text.splitlines() if status in line), None)
    recipients = tuple(BouncedRecipient(a, status, None, diagnostic) for a in failed[:20])
    if not recipients:
        recipients = (BouncedRecipient(None, status, None, diagnostic),)
    return Bounce(recipients, _quoted_id(inbound), standard=False)


def _status_from_text(text: str) -> str:
    found = _STATUS.search(text)
    if found:
        return found.group(0)
    code = _SMTP_CODE.search(text)
    if code:
        return f"{code.group(1)}.0.0"
    if _TEMPORARY_WORDS.search(text) and not _PERMANENT_WORDS.search(text):
        return "4.0.0"
    return "5.0.0"
