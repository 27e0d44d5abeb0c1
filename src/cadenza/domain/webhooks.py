"""Webhooks out: event types, the signature receivers check, and the retry schedule.

The signature follows the widely used `t=<unix time>,v1=<hex HMAC-SHA256>` shape over
`"<t>." + body`: the timestamp inside the signed text lets a receiver refuse replays
of an old delivery, and the version tag lets the scheme change without breaking them.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
from datetime import timedelta
from urllib.parse import urlsplit

from cadenza.domain.enums import UnenrollReason, WebhookEvent
from cadenza.domain.errors import CadenzaError, ErrorCode

EVENT_TYPES = tuple(WebhookEvent)
# An enrollment that ends for one of these reasons also emits the event of that name.
REASON_EVENTS = {
    UnenrollReason.REPLIED: WebhookEvent.REPLIED,
    UnenrollReason.MEETING_BOOKED: WebhookEvent.MEETING_BOOKED,
    UnenrollReason.BOUNCED: WebhookEvent.BOUNCED,
    UnenrollReason.UNSUBSCRIBED: WebhookEvent.UNSUBSCRIBED,
}
PING = "ping"  # sent only by "test this webhook"

MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=6)
SIGNATURE_HEADER = "Cadenza-Signature"
MAX_URL = 2000
EXCERPT = 200  # characters of a receiver's answer or an error kept in the delivery log

# What may be a credential in a receiver's answer or an error: a key=value or header
# naming one, a bearer token, a URL's user:password or query, a long opaque string.
_SECRET_FIELD = re.compile(
    r"(?i)\b(authorization|cookie|set-cookie|token|secret|password|passwd|api[_-]?key|"
    r"session|signature|access[_-]?key)(\"?\s*[:=]\s*\"?)(bearer\s+|basic\s+)?[^\s\"',;&]+"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[\w\-.~+/=]{8,}")
_URL_USERINFO = re.compile(r"(?i)(\w+://)[^/\s@]+@")
_URL_QUERY = re.compile(r"(?i)(\w+://[^\s?#]*)\?[^\s#\"']*")
_OPAQUE = re.compile(r"[A-Za-z0-9_\-+/=]{32,}")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """What a receiver runs: right secret, untouched body, and recent enough."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def backoff(attempt: int) -> timedelta:
    """30 s, 1 min, 2 min, … capped at 6 h, ±25% jitter so retries of many hooks spread."""
    delay: timedelta = min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_CAP)
    return delay * random.uniform(0.75, 1.25)


def excerpt(text: str) -> str:
    """A short, single-line, redacted excerpt for the delivery log.

    A receiver's error page or a connection error can echo what it was sent or holds
    (tokens, cookies, a URL with credentials), and the log is shown to every admin: so
    only the first EXCERPT characters are kept, with anything shaped like a secret
    replaced by `[redacted]`.
    """
    line = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    line = _SECRET_FIELD.sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", line)
    line = _BEARER.sub(lambda m: f"{m.group(1)} [redacted]", line)
    line = _URL_USERINFO.sub(r"\1[redacted]@", line)
    line = _URL_QUERY.sub(r"\1?[redacted]", line)
    line = _OPAQUE.sub("[redacted]", line)
    return line[:EXCERPT] + ("…" if len(line) > EXCERPT else "")


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if (
        len(url) > MAX_URL
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or not url.isprintable()
        or " " in url
    ):
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"a webhook URL must be an absolute http(s) URL of at most {MAX_URL} characters",
            {"field": "url"},
        )
    return url


def check_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if not events or unknown:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            "choose one or more event types"
            + (f"; unknown: {', '.join(unknown)}" if unknown else ""),
            {"field": "events", "allowed": list(EVENT_TYPES)},
        )
    return sorted(set(events))
