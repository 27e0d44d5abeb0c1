"""What tracking adds to an email body, and whether an open or click was a person's.

Pure. The body arrives already sanitised (templates.clean_html), so everything here is
added *after* sanitising: our footer, pixel and redirect links are never subject to the
allow-list meant for what users write, and nothing users write escapes it.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape

from cadenza.domain import templates
from cadenza.domain.link_tokens import MAX_LINKS, Purpose, sign
from cadenza.domain.message import html_to_text

# What `{{ unsubscribe_url }}` renders to: a URL nh3 keeps (http scheme) under a reserved
# domain that can never resolve, replaced by the message's own link when it is composed.
UNSUBSCRIBE_PLACEHOLDER = templates.UNSUBSCRIBE_PLACEHOLDER

FOOTER = (
    '<p style="font-size:12px;color:#888888">Not interested? <a href="{url}">Unsubscribe</a>.</p>'
)
PIXEL = '<img src="{url}" width="1" height="1" alt="" style="border:0">'

# Lower-cased user-agent fragments of link and image scanners run by mail security
# gateways, preview bots and scripts. Image proxies that fetch on a person's behalf
# (Gmail's GoogleImageProxy, YahooMailProxy) are deliberately absent: those are opens.
SCANNER_AGENTS = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "bingpreview",  # Microsoft's link preview / Defender Safe Links detonation
    "safelinks",
    "symantec",
    "messagelabs",
    "trendmicro",
    "trend micro",
    "forcepoint",
    "sophos",
    "fireeye",
    "ironport",
    "python-requests",
    "curl/",
    "wget/",
    "go-http-client",
)


@dataclass(frozen=True)
class LinkMaker:
    """Builds this installation's public links: base URL plus signed token."""

    base_url: str
    secret: bytes = field(repr=False)

    def unsubscribe(self, tracking_id: str) -> str:
        return f"{self.base_url}/u/{sign(self.secret, Purpose.UNSUBSCRIBE, tracking_id)}"

    def open_pixel(self, tracking_id: str) -> str:
        return f"{self.base_url}/o/{sign(self.secret, Purpose.OPEN, tracking_id)}.gif"

    def click(self, tracking_id: str, index: int) -> str:
        return f"{self.base_url}/c/{sign(self.secret, Purpose.CLICK, tracking_id, index)}"


@dataclass(frozen=True)
class TrackedBody:
    unsubscribe_url: str
    html: str  # what is sent
    # The same with the real links and no pixel: what the outbox shows, so that a rep
    # reading a sent email records no open or click.
    untracked_html: str
    text: str  # the plain-text alternative: real URLs, the unsubscribe link, no tracking
    links: list[str]  # click redirect targets, by index; empty when clicks are not tracked


def decorate(
    html: str,
    links: LinkMaker,
    tracking_id: str,
    *,
    track_opens: bool,
    track_clicks: bool,
) -> TrackedBody:
    """Adds the unsubscribe link (where the template put it, else a footer) and, as the
    sequence asks, the open pixel and click redirects."""
    unsubscribe_url = links.unsubscribe(tracking_id)
    plain = _with_unsubscribe(html, unsubscribe_url)
    targets: list[str] = []
    sent = plain
    if track_clicks:
        sent = _with_unsubscribe(_rewrite_links(html, links, tracking_id, targets), unsubscribe_url)
    if track_opens:
        sent += PIXEL.format(url=escape(links.open_pixel(tracking_id)))
    text = _text_part(html, links, unsubscribe_url)
    return TrackedBody(unsubscribe_url, sent, plain, text, targets)


def unsubscribe_headers(url: str) -> tuple[tuple[str, str], ...]:
    """RFC 2369 and RFC 8058: mail clients show their own unsubscribe button, and a
    POST of `List-Unsubscribe=One-Click` to the URL unsubscribes without a page."""
    return (
        ("List-Unsubscribe", f"<{url}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    )


def _text_part(html: str, links: LinkMaker, url: str) -> str:
    """`html_to_text(_with_unsubscribe(html, url))`, made once per distinct body.

    The text of the body with a stand-in for the URL is kept, and each message's URL put
    in its place: the same characters as making it afresh, because the stand-in is the
    URL's own base followed by letters and digits, as the URL is (no space, no `&`: the
    text is made around either alike), and is random to this process, so no body holds
    it. Turning HTML into text was a quarter of composing an email (docs/benchmarks.md);
    a body that differs per contact gains nothing and loses nothing. Long bodies are not
    kept, so the cache stays small (at most 64 bodies of a usual email's length)."""
    slot = _url_slot(links.base_url)
    if "&" in url or len(html) > _KEPT_BODY_CHARS or slot in html:
        return html_to_text(_with_unsubscribe(html, url))
    return _slotted_text(html, slot).replace(slot, url)


_KEPT_BODY_CHARS = 20_000


@functools.lru_cache(maxsize=16)
def _url_slot(base_url: str) -> str:
    return f"{base_url}/u/{secrets.token_hex(16)}"


@functools.lru_cache(maxsize=64)
def _slotted_text(html: str, slot: str) -> str:
    return html_to_text(_with_unsubscribe(html, slot))


def _with_unsubscribe(html: str, url: str) -> str:
    if UNSUBSCRIBE_PLACEHOLDER in html:
        return html.replace(UNSUBSCRIBE_PLACEHOLDER, url)
    return html + FOOTER.format(url=escape(url))


def _rewrite_links(html: str, links: LinkMaker, tracking_id: str, targets: list[str]) -> str:
    """Every http(s) href becomes a redirect; one index per distinct URL, in order seen.

    Done by the sanitiser's own parser (an attribute filter), so a link is what a mail
    client would follow, however the HTML was written."""
    index_of: dict[str, int] = {}

    def rewrite(element: str, attribute: str, value: str) -> str:
        if element != "a" or attribute != "href" or value == UNSUBSCRIBE_PLACEHOLDER:
            return value
        if not value.lower().startswith(("http://", "https://")):
            return value
        if value not in index_of:
            if len(targets) >= MAX_LINKS:
                return value
            index_of[value] = len(targets)
            targets.append(value)
        return links.click(tracking_id, index_of[value])

    return templates.clean_html(html, attribute_filter=rewrite)


def flag_for(
    user_agent: str | None, sent_at: datetime | None, at: datetime, grace: timedelta
) -> str | None:
    """Why an open or click is not counted as a person's, or None when it is."""
    agent = (user_agent or "").strip().lower()
    if not agent or any(marker in agent for marker in SCANNER_AGENTS):
        return "scanner"
    if sent_at is None or at - sent_at < grace:
        return "too_soon"
    return None
