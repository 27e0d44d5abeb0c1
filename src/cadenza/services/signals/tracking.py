"""What recipients do with the links in our emails: unsubscribe, open, click.

Every public link carries a signed token naming one message (domain/link_tokens.py);
a token that does not verify, or names no stored message, is "not found" whatever
the reason, so the answer tells a prober nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadenza.domain.enums import EventKind
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.link_tokens import InvalidToken, Purpose, TokenRef, verify
from cadenza.domain.tracking import flag_for
from cadenza.services.accounts.link_secret import link_secret
from cadenza.services.context import Context
from cadenza.services.counters import messages as counted_messages
from cadenza.services.signals.effects import Signal, apply
from cadenza.store.models import Contact, EmailEvent, Message

_MAX_AGENT = 300  # characters of a user agent kept with an event


def _not_found() -> CadenzaError:
    return CadenzaError(ErrorCode.NOT_FOUND, "this link is not valid")


def _message(
    session: Session, ctx: Context, purpose: Purpose, token: str
) -> tuple[Message, TokenRef]:
    try:
        ref = verify(link_secret(ctx), purpose, token)
    except InvalidToken:
        raise _not_found() from None
    message = session.scalar(select(Message).where(Message.tracking_id == ref.tracking_id))
    if message is None or message.contact_id is None:
        raise _not_found()
    return message, ref


@dataclass(frozen=True)
class Recipient:
    """Who an unsubscribe link is for, as its confirmation page shows it."""

    email: str
    unsubscribed: bool


@dataclass(frozen=True)
class Unsubscribed:
    contact_id: int
    already: bool  # nothing changed: this contact had unsubscribed before
    unenrolled: list[int]  # enrollments ended by this unsubscribe


def recipient(ctx: Context, token: str) -> Recipient:
    """For the confirmation page: reads only (a mail scanner's GET must change nothing)."""
    link_secret(ctx)  # created outside the read, should no link have been sent yet
    with ctx.db.read() as session:
        message, _ = _message(session, ctx, Purpose.UNSUBSCRIBE, token)
        contact = session.get(Contact, message.contact_id)
        if contact is None:
            raise _not_found()
        return Recipient(contact.email or message.to_email, contact.unsubscribed_at is not None)


def unsubscribe(ctx: Context, token: str, user_agent: str | None = None) -> Unsubscribed:
    """The one-click link: marks the contact unsubscribed and unenrolls it everywhere.

    The same `unsubscribe` signal the events API and a complaint apply (effects.py):
    one event row shape and one set of effects, whatever the source. A repeat finds
    the contact unsubscribed already and changes nothing (no event, no audit entry).
    """
    link_secret(ctx)
    with ctx.db.transaction() as session:
        message, _ = _message(session, ctx, Purpose.UNSUBSCRIBE, token)
        contact = session.get(Contact, message.contact_id, with_for_update=True)
        if contact is None:
            raise _not_found()
        if contact.unsubscribed_at is not None:
            return Unsubscribed(contact.id, True, [])
        signal = Signal(
            kind=EventKind.UNSUBSCRIBE,
            dedupe_key=_link_key(session, ctx, contact.id),
            message_pk=message.id,
            contact_id=contact.id,
            data={"source": "link", "user_agent": (user_agent or "")[:_MAX_AGENT]},
        )
        outcome = apply(session, ctx, signal)
        return Unsubscribed(contact.id, False, outcome.unenrolled)


def _link_key(session: Session, ctx: Context, contact_id: int) -> str:
    """One link unsubscribe per contact; after an admin undid it, the next one is new."""
    key = f"unsubscribe:contact:{contact_id}"
    if session.scalar(select(EmailEvent.id).where(EmailEvent.dedupe_key == key)) is None:
        return key
    return f"{key}:{ctx.clock.now().isoformat()}"


def _record(
    session: Session,
    ctx: Context,
    kind: EventKind,
    message: Message,
    user_agent: str | None,
    **data,
) -> EmailEvent:
    now = ctx.clock.now()
    grace = timedelta(seconds=ctx.settings.open_grace_seconds)
    event = EmailEvent(
        kind=kind,
        contact_id=message.contact_id,
        enrollment_id=message.enrollment_id,
        message_id=message.id,
        data={
            "user_agent": (user_agent or "")[:_MAX_AGENT],
            "flagged": flag_for(user_agent, message.sent_at, now, grace),
            **data,
        },
        occurred_at=now,
    )
    session.add(event)
    session.flush()
    counted_messages.event_recorded(session, event)
    return event


def record_open(ctx: Context, token: str, user_agent: str | None) -> EmailEvent:
    """Every fetch of the pixel is kept; scanners' and too-early ones are flagged."""
    link_secret(ctx)
    with ctx.db.transaction() as session:
        message, _ = _message(session, ctx, Purpose.OPEN, token)
        return _record(session, ctx, EventKind.OPEN, message, user_agent)


def record_click(ctx: Context, token: str, user_agent: str | None) -> str:
    """The URL to redirect to: only ever one that was in the message itself."""
    link_secret(ctx)
    with ctx.db.transaction() as session:
        message, ref = _message(session, ctx, Purpose.CLICK, token)
        links = message.links or []
        if ref.link_index is None or ref.link_index >= len(links):
            raise _not_found()
        url = links[ref.link_index]
        _record(session, ctx, EventKind.CLICK, message, user_agent, link=ref.link_index, url=url)
        return url
