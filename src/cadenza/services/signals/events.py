"""Events from outside — another system, or an email provider's webhook — made signals.

The sender names its event (`event_id`); that name is the dedupe key, so a retried
delivery of the same event finds the first one and changes nothing.

Who may say what: an admin (or an admin's integration token, scope `events`) about any
message or contact; a member only about messages sent from their own mailboxes, or
contacts enrolled from them — an unsubscribe marks the contact for the whole team, so
a member must not be able to post one about another member's contact. A complaint,
unsubscribe or bounce posted by mistake is undone by an admin (`revoke`), with an audit
entry, rather than by editing the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadenza.domain import policy
from cadenza.domain.contact_fields import email_key
from cadenza.domain.enums import EventKind, UserRole
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.inbound.postmark import ProviderEvent
from cadenza.domain.policy import Action, Resource
from cadenza.services.access import authorize
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.counters import messages as counted_messages
from cadenza.services.read_models import copy_row
from cadenza.services.signals.effects import Outcome, Signal, record_signal
from cadenza.store.models import Contact, EmailEvent, Enrollment, Mailbox, Message

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


def receive(
    ctx: Context, event: ExternalEvent, *, source: str = "api", actor: policy.Actor | None = None
) -> Outcome:
    """Records and applies the event; refuses one whose message or contact is unknown, or
    (for a member) not theirs. `actor` None is the installation itself (the CLI)."""
    if event.kind not in API_KINDS:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, f"events of type {event.kind} are refused")
    if not event.message_id and not event.contact_email:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "give message_id or contact_email")
    with ctx.db.read() as session:
        message_pk, contact_id = _resolve(
            session, event.message_id, event.contact_email, strict=True
        )
        _authorize(session, actor, message_pk, contact_id)
    return record_signal(ctx, _signal(event, source, message_pk, contact_id))


def _authorize(session: Session, actor: policy.Actor | None, message_pk, contact_id) -> None:
    if actor is None or actor.role == UserRole.ADMIN:
        return
    own = select(Mailbox.id).where(Mailbox.owner_id == actor.id)
    if message_pk is not None:
        query = select(Message.id).where(Message.id == message_pk, Message.mailbox_id.in_(own))
        what = "this message was not sent from one of your mailboxes"
    else:
        query = select(Enrollment.id).where(
            Enrollment.contact_id == contact_id, Enrollment.mailbox_id.in_(own)
        )
        what = "this contact was never enrolled from one of your mailboxes"
    if session.scalar(query.limit(1)) is None:
        raise CadenzaError(
            ErrorCode.PERMISSION_DENIED,
            f"{what}: members post events only about their own; an admin's integration "
            "token may post any",
        )


def receive_provider(ctx: Context, event: ProviderEvent, provider: str) -> Outcome:
    """Like receive, but an unknown recipient is recorded unmatched rather than refused:
    a provider retries what we refuse, and its event is about an address, not our data."""
    with ctx.db.read() as session:
        message_pk, contact_id = _resolve(session, event.message_id, event.email, strict=False)
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
    session: Session, message_id: str | None, contact_email: str | None, *, strict: bool
) -> tuple[int | None, int | None]:
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


# --- review and undo ----------------------------------------------------------------------

# What marks a contact for good, and so may need undoing when posted by mistake.
REVOCABLE = (EventKind.COMPLAINT, EventKind.UNSUBSCRIBE, EventKind.BOUNCE)
_STOPS = (EventKind.COMPLAINT, EventKind.UNSUBSCRIBE)


@dataclass(frozen=True)
class EventView:
    """A recorded event as the admins' review lists it (its dedupe key stays inside)."""

    id: int
    kind: EventKind
    contact_id: int | None
    enrollment_id: int | None
    message_id: int | None
    data: dict[str, Any]
    occurred_at: datetime
    revoked_at: datetime | None
    cause_event_id: int | None  # the event that caused this one (a complaint's unsubscribe)


def list_events(
    ctx: Context,
    *,
    kinds: list[str] | None = None,
    unverified: bool = False,
    before_id: int | None = None,
    limit: int = 50,
) -> list[EventView]:
    """Newest first, for an admin's review: what arrived, from where, and what it did.

    `unverified` keeps the inbound bounces and auto-replies that named no message of
    ours: recorded so that someone can see them, though they changed nothing.
    """
    query = select(EmailEvent).order_by(EmailEvent.id.desc()).limit(max(1, min(limit, 200)))
    if kinds:
        query = query.where(EmailEvent.kind.in_(kinds))
    if before_id is not None:
        query = query.where(EmailEvent.id < before_id)
    if unverified:
        query = query.where(EmailEvent.data["unverified"].as_string().is_not(None))
    with ctx.db.read() as session:
        return [copy_row(EventView, row) for row in session.scalars(query)]


@dataclass(frozen=True)
class Revoked:
    event_id: int
    contact_id: int | None
    unsubscribed_cleared: bool
    bounced_cleared: bool


def revoke(ctx: Context, actor: policy.Actor, event_id: int, reason: str) -> Revoked:
    """Undoes a complaint, unsubscribe or bounce posted by mistake; admins only.

    The event stays, marked revoked, with who and why (and an audit entry). The contact
    loses the mark the event set unless another live event of the same sort still
    stands behind it. Enrollments it ended stay ended — the contact can be enrolled
    again, and whoever does so chooses where the sequence starts.
    """
    reason = " ".join((reason or "").split())
    with ctx.db.transaction() as session:
        authorize(session, actor.id, Resource.EVENT, Action.UPDATE)  # as stored now
        if not 1 <= len(reason) <= 500:
            raise CadenzaError(ErrorCode.VALIDATION_ERROR, "say why, in 1 to 500 characters")
        event = session.get(EmailEvent, event_id, with_for_update=True)
        if event is None:
            raise CadenzaError(ErrorCode.NOT_FOUND, f"event {event_id} does not exist")
        if event.kind not in [str(k) for k in REVOCABLE]:
            raise CadenzaError(
                ErrorCode.INVALID_STATE,
                f"a {event.kind} event cannot be undone: only complaints, unsubscribes and "
                "bounces mark a contact",
            )
        if event.revoked_at is not None:
            raise CadenzaError(ErrorCode.INVALID_STATE, f"event {event_id} was already undone")
        now = ctx.clock.now()
        event.revoked_at = now
        event.data = {**event.data, "revoked": {"by": actor.id, "reason": reason}}
        _revoke_caused(session, event, now, actor.id, reason)
        contact = session.get(Contact, event.contact_id, with_for_update=True)
        cleared_unsubscribe, cleared_bounce = _clear_marks(session, event, contact)
        if event.kind == EventKind.BOUNCE and event.message_id is not None:
            message = session.get(Message, event.message_id)
            if message is not None and message.bounced_at is not None:
                message.bounced_at = None
                counted_messages.message_bounced(session, message, False)
        data = {
            "kind": event.kind,
            "contact_id": event.contact_id,
            "reason": reason,
            "unsubscribed_cleared": cleared_unsubscribe,
            "bounced_cleared": cleared_bounce,
        }
        record(session, ctx, actor.id, "event.revoke", "email_event", event_id, data)
    return Revoked(event_id, event.contact_id, cleared_unsubscribe, cleared_bounce)


def _revoke_caused(session: Session, event: EmailEvent, now, actor_id: int, reason: str) -> None:
    """What the event caused goes with it: a complaint's unsubscribe is undone with it."""
    caused = session.scalars(
        select(EmailEvent).where(
            EmailEvent.cause_event_id == event.id, EmailEvent.revoked_at.is_(None)
        )
    )
    for row in caused:
        row.revoked_at = now
        revoked = {"by": actor_id, "reason": reason, "with_event": event.id}
        row.data = {**row.data, "revoked": revoked}
    session.flush()


def _clear_marks(session: Session, event: EmailEvent, contact: Contact | None):
    """(unsubscribe cleared, bounce cleared) on the contact, unless another event stands."""
    if contact is None:
        return False, False
    if event.kind in _STOPS and contact.unsubscribed_at is not None:
        if _still_standing(session, contact.id, _STOPS):
            return False, False
        contact.unsubscribed_at = None
        return True, False
    if event.kind == EventKind.BOUNCE and contact.bounced_at is not None:
        if _still_standing(session, contact.id, (EventKind.BOUNCE,)):
            return False, False
        contact.bounced_at = None
        return False, True
    return False, False


def _still_standing(session: Session, contact_id: int, kinds: tuple[str, ...]) -> bool:
    """Another unrevoked event of these kinds that acted on the contact (a hard bounce,
    an authenticated one): it keeps the mark."""
    query = select(EmailEvent.id, EmailEvent.kind, EmailEvent.data).where(
        EmailEvent.contact_id == contact_id,
        EmailEvent.kind.in_(kinds),
        EmailEvent.revoked_at.is_(None),
    )
    for _, kind, data in session.execute(query):
        if data.get("unverified"):
            continue
        if kind == EventKind.BOUNCE and data.get("hard") is False:
            continue
        return True
    return False
