"""One outgoing email as bytes: headers, plain/HTML alternatives, threading, Message-IDs.

Pure: no I/O and no clock. The engine generates and stores the Message-ID *before* it
sends, so a crash mid-send is detectable and a step is never sent twice.

Header safety does not rely on the `email` package's object model. It parses str header
values as RFC 5322 source, so an encoded-word such as ``=?utf-8?q?Hi=0D=0ABcc:_x?=`` in a
subject decodes to a real CR LF, which Pythons without the CVE-2024-6923 fix (3.11.7
included) write out as a new header line; it also loses the quotes of a long display
name when folding. Hence every human-written value is collapsed to one line first,
text that is not plain ASCII (or contains ``=?``) becomes encoded-words, addresses are
formatted by us, and identifiers and extra headers are written raw after validation.
"""

from __future__ import annotations

import binascii
import functools
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import errors
from email.header import Header
from email.headerregistry import Address
from email.utils import format_datetime, formataddr
from html.parser import HTMLParser

_FOLD_AT = 78
_MAX_LINE = 998  # RFC 5322 2.1.1, without the CRLF

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # printable ASCII except ":"
_ID_PART = r"[!-;=?A-~]+"  # printable ASCII except "<", ">" and "@"
_MESSAGE_ID = re.compile(rf"<{_ID_PART}@{_ID_PART}>")
_REPLY_PREFIX = re.compile(r"\A(?:re\s*:\s*)+", re.IGNORECASE)
# RFC 5322 dot-atoms on both sides of the "@", the domain in lower-case ASCII: the
# form nearly every address has, and one the stdlib's address parser always accepts.
# Checked by this pattern alone, an address skips that parser, which cost a quarter of
# composing an email: every contact's address is new to the cache (docs/benchmarks.md).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@[a-z0-9-]+(?:\.[a-z0-9-]+)*")
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
    """CRLF, 7-bit bytes ready for SMTP DATA: nothing is left for a transport to re-encode.

    Written line by line with the stdlib's encoders (email.header, email.utils, binascii)
    rather than through EmailMessage: the message's shape is fixed, every value is already
    validated, and the object model cost ten times more than the rest of a send
    (bench/engine.py). tests/unit/test_message.py parses every shape back with the stdlib.
    """
    headers = [
        _address_header("From", email.from_name, email.from_email),
        _address_header("To", email.to_name, email.to_email),
        _text_header("Subject", clean_header_text(email.subject)),
        _date_header(email.date, email.date.utcoffset()),
        _raw_header("Message-ID", email.message_id),
    ]
    if email.in_reply_to:
        headers.append(_raw_header("In-Reply-To", email.in_reply_to))
    if email.references:
        headers.append(_raw_header("References", " ".join(email.references)))
    for name, value in email.extra_headers:
        value = clean_header_text(value)
        if value.isascii():  # structured values (URLs, mailto:) must stay verbatim
            headers.append(_raw_header(name, value))
        else:
            headers.append(f"{name}: {_encoded_words(value, name)}")
    # A random boundary: "=_" never occurs in quoted-printable or 7-bit text we write
    # (quoted-printable escapes "="), and 128 random bits never occur by chance.
    boundary = f"=_{secrets.token_hex(16)}"
    headers += [
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative;\n boundary="{boundary}"',
    ]
    text = email.text_body if email.text_body is not None else html_to_text(email.html_body)
    out = ["\n".join(headers).replace("\n", "\r\n"), "\r\n\r\n"]
    for subtype, body in (("plain", text), ("html", email.html_body)):
        encoding, encoded = _encode_body(body)
        out += [
            f"--{boundary}\r\n",
            f'Content-Type: text/{subtype}; charset="utf-8"\r\n',
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n",
            encoded,
            "\r\n",  # the CRLF before a delimiter belongs to the delimiter (RFC 2046 5.1.1)
        ]
    out.append(f"--{boundary}--\r\n")
    return "".join(out).encode("ascii")


def _encode_body(body: str) -> tuple[str, str]:
    """7bit when the text is ASCII in lines a server accepts, else quoted-printable (C)."""
    lines = body.splitlines()
    if body.isascii() and all(len(line) <= _MAX_LINE for line in lines):
        return "7bit", "".join(f"{line}\r\n" for line in lines)
    data = "\r\n".join(lines).encode("utf-8") + b"\r\n"
    return "quoted-printable", binascii.b2a_qp(data, istext=True).decode("ascii")


@functools.lru_cache(maxsize=4096)
def _ascii_address(address: str) -> str:
    """One deliverable address, with an IDN domain in its ASCII (punycode) form.

    Cached: the same sender is checked for every email of a batch."""
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
    if _DOT_ATOM_ADDRESS.fullmatch(address):
        return address
    try:
        Address(addr_spec=address)
    except (ValueError, errors.HeaderParseError) as exc:
        raise ValueError(f"not a valid email address: {address!r}") from exc
    return address


def _check_message_id(message_id: str) -> None:
    if not _MESSAGE_ID.fullmatch(message_id):
        raise ValueError(f"not a message ID of the form <left@right>: {message_id!r}")


@functools.lru_cache(maxsize=64)
def _date_header(date: datetime, offset: timedelta | None) -> str:
    """Cached: a claim round dates all its emails with the same instant. Keyed by the
    offset too: one instant in two zones is one key for a datetime alone."""
    return f"Date: {format_datetime(date)}"


@functools.lru_cache(maxsize=4096)
def _address_header(header: str, name: str | None, address: str) -> str:
    """Never folded inside the name: a folded quoted name can read as two mailboxes
    ("Smith, John"), and a literal "=?...?=" in it would be decoded by readers.

    Cached: a mailbox's From header is the same for every email it sends."""
    address = _ascii_address(address)
    name = clean_header_text(name or "")
    value = formataddr((name, address))  # quoted, or one encoded-word, as the name needs
    if "=?" in name or len(header) + 2 + len(value) > _FOLD_AT:
        words = _encoded_words(name, header)
        last = len(words.rpartition("\n")[2]) if "\n" in words else len(header) + 2 + len(words)
        fold = "\n" if last + 2 + len(address) + 1 > _FOLD_AT else ""
        value = f"{words}{fold} <{address}>"
    return f"{header}: {value}"


def _text_header(header: str, text: str) -> str:
    """Human text: verbatim and folded when plain ASCII, else RFC 2047 encoded-words."""
    if text.isascii() and "=?" not in text:
        try:
            return _raw_header(header, text)
        except ValueError:  # a word too long for any line: encoded-words can split it
            pass
    return f"{header}: {_encoded_words(text, header)}"


def _encoded_words(text: str, header: str) -> str:
    """RFC 2047 words for all of the text, so a literal "=?...?=" is shown, not decoded."""
    return Header(text, "utf-8", header_name=header).encode(linesep="\n")


def _raw_header(header: str, value: str) -> str:
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
    return "\n".join(lines)


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
