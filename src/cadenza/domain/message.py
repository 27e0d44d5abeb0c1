"""One outgoing email as bytes: headers, plain/HTML alternatives, threading, Message-IDs.

Pure: no I/O and no clock. The engine generates and stores the Message-ID *before* it
sends, so a crash mid-send is detectable and a step is never sent twice.

Header safety does not rely on the `email` package. It parses str header values as
RFC 5322 source, so an encoded-word such as ``=?utf-8?q?Hi=0D=0ABcc:_x?=`` in a subject
decodes to a real CR LF, which Pythons without the CVE-2024-6923 fix (3.11.7 included)
write out as a new header line. It also loses the quotes of a long display name when
folding. Hence: every human-written value is collapsed to one line before it reaches
the package, text containing ``=?`` is encoded by us, addresses are formatted by us,
and identifiers and extra headers are written raw after validation.
"""

from __future__ import annotations

import functools
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email import errors, policy
from email.header import Header
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, formataddr
from html.parser import HTMLParser

# 7bit: no dependence on the server's 8BITMIME, and relays cannot re-encode the body
# (which would break DKIM). refold_source="none": values set with set_raw are written
# as given; otherwise any line over 78 characters, such as a long List-Unsubscribe URL
# or Message-ID, would be refolded into RFC 2047 encoded-words that nobody decodes.


class _HeaderClasses(HeaderRegistry):
    """The stdlib registry builds a new class for every header it looks up; building each
    one once takes most of the cost out of composing a message (measured: bench/engine.py)."""

    @functools.cache  # noqa: B019 - one registry for the life of the process
    def __getitem__(self, name: str) -> type:
        return super().__getitem__(name)


_POLICY = policy.SMTP.clone(cte_type="7bit", refold_source="none", header_factory=_HeaderClasses())
_FOLD_AT = 78
_MAX_LINE = 998  # RFC 5322 2.1.1, without the CRLF

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # printable ASCII except ":"
_ID_PART = r"[!-;=?A-~]+"  # printable ASCII except "<", ">" and "@"
_MESSAGE_ID = re.compile(rf"<{_ID_PART}@{_ID_PART}>")
_REPLY_PREFIX = re.compile(r"\A(?:re\s*:\s*)+", re.IGNORECASE)
# Set by build_mime, or put recipients in the headers that the envelope knows nothing of.
_RESERVED = frozenset(
    {"from", "to", "cc", "bcc", "subject", "date", "message-id", "in-reply-to", "references"}
    | {"mime-version", "content-type", "content-transfer-encoding"}
)


@dataclass(frozen=True)
class OutgoingEmail:
    """Plain data, so the engine can store message_id and date before the send is tried."""

    message_id: str
    from_email: str
    from_name: str | None
    to_email: str
    to_name: str | None
    subject: str
    html_body: str
    date: datetime
    text_body: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    extra_headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        """Refuse at construction, so an email that cannot be sent safely never exists."""
        _ascii_address(self.from_email)
        _ascii_address(self.to_email)
        for message_id in (self.message_id, self.in_reply_to, *self.references):
            if message_id is not None:
                _check_message_id(message_id)
        if self.date.tzinfo is None or self.date.utcoffset() is None:
            raise ValueError("date must be timezone-aware: a naive time has no instant")
        seen: set[str] = set()
        for name, _ in self.extra_headers:
            key = name.lower()
            if not _HEADER_NAME.fullmatch(name) or key in _RESERVED or key in seen:
                raise ValueError(f"extra header name {name!r} is invalid, reserved or repeated")
            seen.add(key)


def new_message_id(from_email: str) -> str:
    """A random ID under the sender's domain: the hostname would leak the server and repeat."""
    domain = _ascii_address(from_email).rpartition("@")[2]
    return f"<{secrets.token_urlsafe(24)}@{domain}>"


def reply_subject(subject: str) -> str:
    """Replies are prefixed once, as mail clients do, however long the thread."""
    rest = _REPLY_PREFIX.sub("", clean_header_text(subject))
    return f"Re: {rest}".strip()


def clean_header_text(text: str) -> str:
    """Any control character or whitespace run (CR and LF included) becomes one space."""
    return " ".join(_CONTROL.sub(" ", text).split())


def build_mime(email: OutgoingEmail) -> bytes:
    """CRLF, 7-bit bytes ready for SMTP DATA: nothing is left for a transport to re-encode."""
    msg = EmailMessage(policy=_POLICY)
    _set_address(msg, "From", email.from_name, email.from_email)
    _set_address(msg, "To", email.to_name, email.to_email)
    _set_text(msg, "Subject", clean_header_text(email.subject))
    msg["Date"] = format_datetime(email.date)
    _set_raw(msg, "Message-ID", email.message_id)
    if email.in_reply_to:
        _set_raw(msg, "In-Reply-To", email.in_reply_to)
    if email.references:
        _set_raw(msg, "References", " ".join(email.references))
    for name, value in email.extra_headers:
        value = clean_header_text(value)
        if value.isascii():  # structured values (URLs, mailto:) must stay verbatim
            _set_raw(msg, name, value)
        else:
            msg.set_raw(name, _encoded_words(value, name))
    msg["MIME-Version"] = "1.0"
    msg.make_alternative()
    # A random boundary of our own: the generator would otherwise compile a fresh regex
    # per message to prove its guessed boundary absent. "=_" never occurs in
    # quoted-printable or base64 text, and 128 random bits never occur by chance.
    msg.set_boundary(f"=_{secrets.token_hex(16)}")
    text = email.text_body if email.text_body is not None else html_to_text(email.html_body)
    # MIMEPart, not add_alternative(): that adds a stray MIME-Version to the HTML part.
    for subtype, body in (("plain", text), ("html", email.html_body)):
        part = MIMEPart(policy=_POLICY)
        part.set_content(body, subtype=subtype, charset="utf-8")
        msg.attach(part)
    return msg.as_bytes()


def _ascii_address(address: str) -> str:
    """One deliverable address, with an IDN domain in its ASCII (punycode) form."""
    local, at, domain = address.rpartition("@")
    if (
        not (local and at and domain)
        or not address.isprintable()  # control characters, CR, LF, Unicode line breaks
        or any(c in address for c in " ,<>")
        or len(address) > 254
    ):
        raise ValueError(f"not a single email address: {address!r}")
    if not local.isascii():
        raise ValueError(f"non-ASCII local part needs SMTPUTF8: {address!r}")
    address = f"{local}@{domain.encode('idna').decode('ascii').lower()}"
    try:
        Address(addr_spec=address)
    except (ValueError, errors.HeaderParseError) as exc:
        raise ValueError(f"not a valid email address: {address!r}") from exc
    return address


def _check_message_id(message_id: str) -> None:
    if not _MESSAGE_ID.fullmatch(message_id):
        raise ValueError(f"not a message ID of the form <left@right>: {message_id!r}")


def _set_address(msg: EmailMessage, header: str, name: str | None, address: str) -> None:
    """Never folded by the package: it drops the quotes of a long display name when folding
    (so "Smith, John" becomes two mailboxes) and decodes a literal "=?...?=" in it."""
    address = _ascii_address(address)
    name = clean_header_text(name or "")
    value = formataddr((name, address))  # quoted, or one encoded-word, as the name needs
    if "=?" in name or len(header) + 2 + len(value) > _FOLD_AT:
        value = f"{_encoded_words(name, header)} <{address}>"
    msg.set_raw(header, value)


def _set_text(msg: EmailMessage, header: str, text: str) -> None:
    if "=?" in text:
        msg.set_raw(header, _encoded_words(text, header))
    else:
        msg[header] = text


def _encoded_words(text: str, header: str) -> str:
    """RFC 2047 words for all of the text, so a literal "=?...?=" is shown, not decoded."""
    return Header(text, "utf-8", header_name=header).encode(linesep="\n")


def _set_raw(msg: EmailMessage, header: str, value: str) -> None:
    """Fold an ASCII value at spaces; a long token (a URL, an ID) stays whole on its line."""
    lines: list[str] = []
    line = f"{header}:"
    for i, word in enumerate(value.split(" ")):
        if i and len(line) + 1 + len(word) > _FOLD_AT:
            lines.append(line)
            line = ""
        line += f" {word}"
    lines.append(line)
    if any(len(line) > _MAX_LINE for line in lines):
        raise ValueError(f"{header} has a token longer than a header line may be")
    msg.set_raw(header, "\n".join(lines)[len(header) + 2 :])


# Not "head": HTML lets </head> be left out, and then the whole body would vanish.
_SKIPPED = frozenset({"script", "style", "title", "template"})
_PARAGRAPHS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table"})
_LINES = frozenset({"div", "tr", "blockquote", "section", "article", "header", "footer"})


def html_to_text(html: str) -> str:
    """The text/plain alternative: what a reader of the HTML would see, links spelled out."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


class _TextExtractor(HTMLParser):
    """Block boundaries ask for at least n line breaks, so nested blocks do not add up."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.pending = 0
        self.skipping = 0
        self.links: list[tuple[str | None, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skipping += 1
        elif tag in ("td", "th"):
            self.parts.append(" ")
        elif tag in ("br", "hr"):
            self._write("\n")
        elif tag == "li":
            self.pending = max(self.pending, 1)
            self._write("- ")
        elif tag in _PARAGRAPHS or tag in _LINES:
            if self.parts[-1:] != ["- "]:  # <li><p>text: keep the text on the bullet's line
                self._break(tag)
        elif tag == "a":
            self.links.append((dict(attrs).get("href"), len(self.parts)))
        elif tag == "img" and not self.skipping:
            self._write(dict(attrs).get("alt") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _PARAGRAPHS or tag in _LINES:
            self._break(tag)
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            label = " ".join("".join(self.parts[start:]).split())
            if href and not href.startswith("#") and href not in (label, f"mailto:{label}"):
                self._write(f" ({href})" if label else href)

    def handle_data(self, data: str) -> None:
        if not self.skipping and data.strip():
            self._write(re.sub(r"\s+", " ", data))
        elif not self.skipping and data and not self.pending:
            self.parts.append(" ")

    def _break(self, tag: str) -> None:
        self.pending = max(self.pending, 2 if tag in _PARAGRAPHS else 1)

    def _write(self, text: str) -> None:
        if self.pending:
            self.parts.append("\n" * self.pending)
            self.pending = 0
        self.parts.append(text)
