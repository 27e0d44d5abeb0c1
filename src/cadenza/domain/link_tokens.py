"""Signed tokens for the links in our emails: unsubscribe, open pixel, click redirect.

A token is `KEY.SIG` or, for a click, `KEY.N.SIG`: KEY is the message's random
tracking id (16 URL-safe characters), N the index of the link in that message, and
SIG the first 128 bits of HMAC-SHA256(secret, purpose + payload), URL-safe base64.
The purpose is inside the MAC, so an open token is no unsubscribe token. Tokens never
expire (an unsubscribe link must work years later); they cannot be forged without
the secret, nor enumerated, since KEY is random too. About 40 characters: short
enough for a header line and a tidy link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

MAX_LINKS = 1000  # links rewritten per message; the rest are left as they are


class Purpose(StrEnum):
    UNSUBSCRIBE = "u"
    OPEN = "o"
    CLICK = "c"


_KEY = r"[A-Za-z0-9_-]{16}"
_SIG = r"[A-Za-z0-9_-]{22}"
_TOKEN = re.compile(rf"({_KEY})(?:\.(0|[1-9][0-9]{{0,3}}))?\.({_SIG})")


class InvalidToken(ValueError):
    """Malformed, truncated, modified or forged: the caller answers "not found"."""


@dataclass(frozen=True)
class TokenRef:
    tracking_id: str
    link_index: int | None = None


def new_tracking_id() -> str:
    """96 random bits: the message's public name in every link it carries."""
    return secrets.token_urlsafe(12)


def _mac(secret: bytes, purpose: Purpose, payload: str) -> str:
    digest = hmac.new(secret, f"{purpose}:{payload}".encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode("ascii").rstrip("=")


def sign(secret: bytes, purpose: Purpose, tracking_id: str, link_index: int | None = None) -> str:
    if (link_index is None) != (purpose is not Purpose.CLICK):
        raise ValueError("a link index goes with click tokens, and only with them")
    payload = tracking_id if link_index is None else f"{tracking_id}.{link_index}"
    return f"{payload}.{_mac(secret, purpose, payload)}"


def verify(secret: bytes, purpose: Purpose, token: str) -> TokenRef:
    """The message (and link) a genuine token names; InvalidToken for anything else."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise InvalidToken("malformed token")
    tracking_id, index, signature = match.groups()
    if (index is None) != (purpose is not Purpose.CLICK):
        raise InvalidToken("token of another kind")
    payload = tracking_id if index is None else f"{tracking_id}.{index}"
    if not hmac.compare_digest(signature, _mac(secret, purpose, payload)):
        raise InvalidToken("bad signature")
    return TokenRef(tracking_id, None if index is None else int(index))
