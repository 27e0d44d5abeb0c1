"""Events from outside — another system, or an email provider's webhook — made signals.

The sender names its event (`event_id`); that name is the dedupe key, so a retried
delivery of the same event finds the first one and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from cadenza.domain.contact_fields import email_key
from cadenza.domain.enums import EventKind
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.inbound.postmark import ProviderEvent
from cadenza.services.context import Context
from cadenza.services.signals import Outcome, Signal, record_signal
from cadenza.store.models import Contact, Message

# What the events API accepts; auto-replies only come from reading an inbox.
API_KINDS = (
    EventKind.REPLY,
    EventKind.MEETING_BOOKED,
    EventKind.BOUNCE,
    EventKind.COMPLAINT,
    EventKind.UNSUBSCRIBE,
)


@dataclass(frozen=True)
class ExternalEvent:
    kind: EventKind
    event_id: str
    message_id: str | None = None  # our Message-ID header, e.g. "<abc@example.com>"
    contact_email: str | None = None
    hard: bool = True
    occurred_at: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)


def receive(ctx: Context, event: ExternalEvent, *, source: str = "api") -> Outcome:
    """Records and applies the event; refuses one whose message or contact is unknown."""
    if event.kind not in API_KINDS:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, f"events of type {event.kind} are refused")
    if not event.message_id and not event.contact_email:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "give message_id or contact_email")
    message_pk, contact_id = _resolve(ctx, event.message_id, event.contact_email, strict=True)
    return record_signal(ctx, _signal(event, source, message_pk, contact_id))


def receive_provider(ctx: Context, event: ProviderEvent, provider: str) -> Outcome:
    """Like receive, but an unknown recipient is recorded unmatched rather than refused:
    a provider retries what we refuse, and its event is about an address, not our data."""
    message_pk, contact_id = _resolve(ctx, event.message_id, event.email, strict=False)
    external = ExternalEvent(
        kind=event.kind,
        event_id=event.provider_id,
        hard=event.hard,
        occurred_at=event.occurred_at,
        data={**event.data, "email": event.email},
    )
    return record_signal(ctx, _signal(external, provider, message_pk, contact_id))


def _signal(event: ExternalEvent, source: str, message_pk, contact_id) -> Signal:
    data = {**event.data, "source": source, "event_id": event.event_id}
    if event.kind is EventKind.BOUNCE:
        data["hard"] = event.hard
    return Signal(
        kind=event.kind,
        dedupe_key=f"{source}:{event.event_id}",
        message_pk=message_pk,
        contact_id=contact_id,
        hard=event.hard,
        occurred_at=event.occurred_at,
        data=data,
    )


def _resolve(
    ctx: Context, message_id: str | None, contact_email: str | None, *, strict: bool
) -> tuple[int | None, int | None]:
    with ctx.db.read() as session:
        if message_id:
            found = session.execute(
                select(Message.id, Message.contact_id).where(Message.message_id == message_id)
            ).first()
            if found is not None:
                return found.id, found.contact_id
            if strict and not contact_email:
                raise CadenzaError(
                    ErrorCode.NOT_FOUND,
                    f"no message we sent has the Message-ID {message_id}",
                    {"message_id": message_id},
                )
        if contact_email:
            contact_id = session.scalar(
                select(Contact.id).where(Contact.email_key == email_key(contact_email.strip()))
            )
            if contact_id is not None:
                return None, contact_id
            if strict:
                raise CadenzaError(
                    ErrorCode.CONTACT_NOT_FOUND,
                    f"no contact has the address {contact_email}",
                    {"contact_email": contact_email},
                )
    return None, None
