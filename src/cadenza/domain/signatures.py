"""A rep's own touches: the HTML signature and the meeting (booking) link, checked when
saved and put into emails (docs/content.md).

The sandboxed templates escape every value, so a signature cannot be a template value:
`{{ sender.signature }}` renders to a letters-only placeholder that nothing escapes, and
the placeholder is swapped for the (already sanitised) signature after the body has been
rendered and cleaned. The signature itself is never a template: `{{ }}` typed into it is
text. The text part is made from the final HTML, so it carries the signature as text.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.message import html_to_text
from cadenza.domain.templates import clean_html

MAX_SIGNATURE_CHARS = 10_000
MAX_LINK_CHARS = 2_000
# Lower-case letters only: autoescaping and nh3 leave it as it is, and no entity starts so.
PLACEHOLDER = "cdzsendersignatureslot"
TOKEN = "sender.signature"


def clean_signature(html: str | None) -> str | None:
    """The signature as stored: sanitised by the same allow-list as email bodies (scripts,
    event handlers, `javascript:` links and styles with URLs go); None when empty."""
    text = (html or "").strip()
    if len(text) > MAX_SIGNATURE_CHARS:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"a signature is at most {MAX_SIGNATURE_CHARS:,} characters",
            {"field": "signature_html"},
        )
    if "\x00" in text:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "a signature cannot contain NUL")
    cleaned = clean_html(text).replace(PLACEHOLDER, "").strip()
    return cleaned if html_to_text(cleaned) or "<img" in cleaned else None


def check_meeting_link(url: str | None) -> str | None:
    """An absolute http(s) URL with a host, at most 2,000 characters; None when empty."""
    text = (url or "").strip()
    if not text:
        return None
    parts = urlsplit(text) if len(text) <= MAX_LINK_CHARS else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() or ord(c) < 32 for c in text)
        or any(c in text for c in "<>\"'")
    ):
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"the meeting link must be an absolute http(s) URL of at most {MAX_LINK_CHARS:,} "
            "characters, such as https://cal.com/ann/30min",
            {"field": "meeting_link"},
        )
    return text


def signature_text(html: str | None) -> str:
    """The signature in one line, for a subject or a task title."""
    return " ".join(html_to_text(html or "").split())


def uses_signature(*sources: str | None) -> bool:
    """Whether a template places the signature itself (then it is not appended)."""
    return any(source and TOKEN in source for source in sources)


def fill(body_html: str, signature_html: str | None) -> str:
    """The rendered, cleaned body with the signature where the token was."""
    return body_html.replace(PLACEHOLDER, signature_html or "")


def appended(body_html: str, signature_html: str | None) -> str:
    """The body with the signature added at its end (the per-sequence setting)."""
    if not signature_html:
        return body_html
    return f"{body_html}<br><div>{signature_html}</div>"
