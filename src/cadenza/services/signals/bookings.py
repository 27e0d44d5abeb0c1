"""Booking webhooks (Cal.com, Calendly) made `meeting_booked` signals.

A booking arrives signed with a secret the admin set here (kept sealed in app_secrets,
never shown again); its attendee's address names the contact. The signal then goes the
one way every signal goes (`signals.events.receive_provider` → `effects.record_signal`),
so "unenroll on meeting booked" applies, and the provider's booking id is the event's
dedupe key: a retried delivery finds the first event and changes nothing. An address
that is no contact is recorded unmatched and answered as received (the provider would
only retry a refusal).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from cadenza.domain.contact_fields import email_key
from cadenza.domain.enums import EventKind
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.inbound import bookings as rules
from cadenza.domain.inbound.bookings import BookingProvider
from cadenza.domain.inbound.postmark import ProviderEvent
from cadenza.domain.policy import Action, Resource
from cadenza.services.access import authorize
from cadenza.services.accounts.keys import open_sealed, seal
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.signals.effects import Outcome
from cadenza.services.signals.events import receive_provider
from cadenza.store.models import AppSecret, Contact

NO_CONTACT = "no matching contact"


@dataclass(frozen=True)
class BookingOutcome:
    outcome: Outcome | None  # None: an event type we do not act on
    ignored: str | None = None


@dataclass(frozen=True)
class SecretStatus:
    provider: BookingProvider
    configured: bool
    set_at: datetime | None


# --- the signing secrets (admins) ------------------------------------------------------


def set_secret(ctx: Context, actor_id: int | None, provider: BookingProvider, secret: str) -> None:
    """Stores (sealed) the secret the provider signs with, replacing any earlier one."""
    clean = rules.check_secret(secret)
    name = rules.secret_name(provider)
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.BOOKING_WEBHOOK, Action.UPDATE)
        sealed = seal(ctx, clean, AppSecret, "value") or ""  # never empty: checked above
        row = session.get(AppSecret, name, with_for_update=True)
        if row is None:
            session.add(AppSecret(name=name, value=sealed, created_at=ctx.clock.now()))
        else:
            row.value, row.created_at = sealed, ctx.clock.now()
        record(session, ctx, actor_id, "booking_webhook.secret_set", "booking_webhook", None,
               {"provider": str(provider)})  # fmt: skip


def clear_secret(ctx: Context, actor_id: int | None, provider: BookingProvider) -> bool:
    """Forgets the secret: the provider's deliveries are refused until one is set again."""
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.BOOKING_WEBHOOK, Action.UPDATE)
        row = session.get(AppSecret, rules.secret_name(provider), with_for_update=True)
        if row is not None:
            session.delete(row)
        record(session, ctx, actor_id, "booking_webhook.secret_cleared", "booking_webhook", None,
               {"provider": str(provider)})  # fmt: skip
        return row is not None


def secret_status(ctx: Context, actor_id: int | None) -> list[SecretStatus]:
    """Which providers have a secret (never the secret itself)."""
    with ctx.db.read() as session:
        authorize(session, actor_id, Resource.BOOKING_WEBHOOK, Action.READ)
        stored = dict(
            session.execute(
                select(AppSecret.name, AppSecret.created_at).where(
                    AppSecret.name.in_([rules.secret_name(p) for p in BookingProvider])
                )
            ).all()
        )
    return [
        SecretStatus(p, rules.secret_name(p) in stored, stored.get(rules.secret_name(p)))
        for p in BookingProvider
    ]


def _secret(ctx: Context, provider: BookingProvider) -> str | None:
    with ctx.db.read() as session:
        stored = session.scalar(
            select(AppSecret.value).where(AppSecret.name == rules.secret_name(provider))
        )
    return open_sealed(ctx, stored, AppSecret, "value")


# --- deliveries --------------------------------------------------------------------------


def receive(
    ctx: Context, provider: BookingProvider, signature: str | None, body: bytes
) -> BookingOutcome:
    """Checks the signature over the raw body, then records a booked meeting as a
    `meeting_booked` signal (other event types are ignored). Raises CadenzaError:
    401 invalid_signature / signature_expired, 413 body_too_large, 422 validation_error."""
    if len(body) > rules.MAX_BODY_BYTES:
        raise CadenzaError(
            ErrorCode.BODY_TOO_LARGE,
            f"a booking webhook body is limited to {rules.MAX_BODY_BYTES // 1024} KB",
        )
    rules.verify(provider, _secret(ctx, provider), signature, body, ctx.clock.now().timestamp())
    payload = rules.parse_body(body)
    try:
        booking = rules.read_booking(provider, payload)
    except ValueError as exc:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, str(exc)) from None
    if booking is None:
        return BookingOutcome(None, ignored=rules.event_type(provider, payload) or "unknown")
    data = dict(booking.data)
    with ctx.db.read() as session:
        known = session.scalar(
            select(Contact.id).where(Contact.email_key == email_key(booking.email)).limit(1)
        )
    if known is None:  # kept for an admin to see (GET /events), acting on nobody
        data["unmatched"] = NO_CONTACT
    event = ProviderEvent(
        kind=EventKind.MEETING_BOOKED,
        provider_id=booking.uid,
        email=booking.email,
        hard=False,
        message_id=None,
        occurred_at=booking.occurred_at,
        data=data,
    )
    outcome = receive_provider(ctx, event, str(provider))
    return BookingOutcome(outcome)
