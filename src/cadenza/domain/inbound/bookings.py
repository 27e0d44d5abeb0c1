"""Booking webhooks from Cal.com and Calendly: their signature checks, and the booking
each one reports, read into our terms (pure: no I/O).

Cal.com signs a delivery with the webhook's secret: `X-Cal-Signature-256` is the hex
HMAC-SHA256 of the raw body. Calendly signs with the subscription's signing key:
`Calendly-Webhook-Signature: t=<unix seconds>,v1=<hex>`, the hex HMAC-SHA256 of
"<t>.<raw body>"; the timestamp is checked against a tolerance so that a captured
delivery cannot be replayed later (docs/signals.md, "Booking webhooks").
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from cadenza.domain.errors import CadenzaError, ErrorCode

MAX_BODY_BYTES = 256 * 1024  # a booking is a few kilobytes; anything far larger is refused
MAX_SECRET_CHARS = 100  # sealed, it must fit app_secrets.value (200 characters)
MIN_SECRET_CHARS = 16
CALENDLY_TOLERANCE_SECONDS = 180  # Calendly's own advice: a few minutes


class BookingProvider(StrEnum):
    CALCOM = "calcom"
    CALENDLY = "calendly"


SIGNATURE_HEADERS = {
    BookingProvider.CALCOM: "x-cal-signature-256",
    BookingProvider.CALENDLY: "calendly-webhook-signature",
}
# The events that mean "a meeting was booked"; every other one is answered and ignored.
BOOKED = {BookingProvider.CALCOM: "BOOKING_CREATED", BookingProvider.CALENDLY: "invitee.created"}


@dataclass(frozen=True)
class Booking:
    provider: BookingProvider
    uid: str  # the provider's id for the booking: the idempotency key
    email: str
    occurred_at: datetime | None
    data: dict[str, Any]


def secret_name(provider: BookingProvider) -> str:
    """The app_secrets row that keeps the provider's signing secret (sealed)."""
    return f"booking_webhook:{provider}"


def check_secret(secret: str) -> str:
    secret = (secret or "").strip()
    if not MIN_SECRET_CHARS <= len(secret) <= MAX_SECRET_CHARS or not secret.isprintable():
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"a signing secret is {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} printable characters",
        )
    return secret


def _refuse(message: str, code: ErrorCode = ErrorCode.INVALID_SIGNATURE) -> CadenzaError:
    return CadenzaError(code, message)


def _digest(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(
    provider: BookingProvider, secret: str | None, header: str | None, body: bytes, now: float
) -> None:
    """Raises CadenzaError (401) unless `header` is the provider's valid signature of
    `body` under `secret`; `now` is the current Unix time (Calendly's timestamp check)."""
    name = SIGNATURE_HEADERS[provider]
    if not secret:
        raise _refuse(
            f"no {provider} signing secret is set here: an admin sets it "
            f"(`cadenza integrations set-secret {provider}`) before bookings are accepted"
        )
    if not header:
        raise _refuse(f"the {name} header is missing: every delivery must be signed")
    if provider is BookingProvider.CALCOM:
        given = header.strip().lower().removeprefix("sha256=")
        if not hmac.compare_digest(given.encode(), _digest(secret, body).encode()):
            raise _refuse(f"the {name} signature does not match the body")
        return
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value.strip())
    stamps, signatures = parts.get("t", []), parts.get("v1", [])
    if len(stamps) != 1 or not stamps[0].isdigit() or not signatures:
        raise _refuse(f"the {name} header must read t=<timestamp>,v1=<signature>")
    expected = _digest(secret, stamps[0].encode() + b"." + body).encode()
    if not any(hmac.compare_digest(s.lower().encode(), expected) for s in signatures):
        raise _refuse(f"the {name} signature does not match the body")
    if abs(now - int(stamps[0])) > CALENDLY_TOLERANCE_SECONDS:
        raise _refuse(
            f"the {name} timestamp is more than {CALENDLY_TOLERANCE_SECONDS} seconds from "
            "now: a late or replayed delivery is refused",
            ErrorCode.SIGNATURE_EXPIRED,
        )


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "the body must be a JSON object")
    return payload


def event_type(provider: BookingProvider, payload: dict[str, Any]) -> str:
    key = "triggerEvent" if provider is BookingProvider.CALCOM else "event"
    return str(payload.get(key) or "")[:100]


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _text(value: Any, limit: int = 500) -> str | None:
    return str(value)[:limit] if isinstance(value, (str, int)) and str(value) else None


def read_booking(provider: BookingProvider, payload: dict[str, Any]) -> Booking | None:
    """The booking a "booked" event reports; None for any other event (a ping, a
    cancellation, …); ValueError when a booked event lacks its id or an address."""
    if event_type(provider, payload) != BOOKED[provider]:
        return None
    inner = payload.get("payload")
    if not isinstance(inner, dict):
        raise ValueError("the booking's payload object is missing")
    if provider is BookingProvider.CALCOM:
        uid = inner.get("uid")
        attendees = inner.get("attendees")
        first = attendees[0] if isinstance(attendees, list) and attendees else {}
        email = first.get("email") if isinstance(first, dict) else None
        data = {
            "title": _text(inner.get("title")),
            "start_time": _text(inner.get("startTime"), 40),
            "name": _text(first.get("name")) if isinstance(first, dict) else None,
        }
        occurred = _when(payload.get("createdAt"))
    else:
        uid = inner.get("uri")
        email = inner.get("email")
        scheduled = inner.get("scheduled_event")
        scheduled = scheduled if isinstance(scheduled, dict) else {}
        data = {
            "title": _text(scheduled.get("name")),
            "start_time": _text(scheduled.get("start_time"), 40),
            "name": _text(inner.get("name")),
        }
        occurred = _when(payload.get("created_at"))
    if not isinstance(uid, str) or not uid.strip() or len(uid) > 300:
        raise ValueError(f"a {BOOKED[provider]} event needs its booking id (1-300 characters)")
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        raise ValueError(f"a {BOOKED[provider]} event needs the attendee's email address")
    return Booking(
        provider=provider,
        uid=uid.strip(),
        email=email.strip(),
        occurred_at=occurred,
        data={"provider": str(provider), **{k: v for k, v in data.items() if v}},
    )


def sign_calcom(secret: str, body: bytes) -> str:
    """What Cal.com sends in X-Cal-Signature-256 (for tests and for checking a setup)."""
    return _digest(secret, body)


def sign_calendly(secret: str, body: bytes, timestamp: int) -> str:
    """What Calendly sends in Calendly-Webhook-Signature."""
    return f"t={timestamp},v1={_digest(secret, str(timestamp).encode() + b'.' + body)}"
