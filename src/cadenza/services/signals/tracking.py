"""What recipients do with the links in our emails: unsubscribe, open, click.

Every public link carries a signed token naming one message (domain/link_tokens.py);
a token that does not verify, or names no stored message, is "not found" whatever
the reason, so the answer tells a prober nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadenza.domain.enums import LIVE_ENROLLMENT_STATES, EventKind, UnenrollReason
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.link_tokens import InvalidToken, Purpose, TokenRef, verify
from cadenza.domain.tracking import flag_for
from cadenza.services.accounts.link_secret import link_secret
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.enrollment.control import end_enrollment
from cadenza.store.models import Contact, EmailEvent, Enrollment, Message

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
    """The one-click link: marks the contact unsubscribed and unenrolls it everywhere."""
    link_secret(ctx)
    with ctx.db.transaction() as session:
        message, _ = _message(session, ctx, Purpose.UNSUBSCRIBE, token)
        contact = session.get(Contact, message.contact_id, with_for_update=True)
        if contact is None:
            raise _not_found()
        return unsubscribe_contact(
            session,
            ctx,
            contact,
            message,
            detail=f"unsubscribe link in {message.message_id}",
            data={"source": "link", "user_agent": (user_agent or "")[:_MAX_AGENT]},
        )


def unsubscribe_contact(
    session: Session,
    ctx: Context,
    contact: Contact,
    message: Message | None,
    *,
    detail: str,
    data: dict[str, Any],
) -> Unsubscribed:
    """In the caller's transaction, with the contact row locked: sets unsubscribed_at,
    ends every live enrollment with reason `unsubscribed`, records the event once.

    Idempotent: a repeat (by link, or any other source calling this) finds the contact
    unsubscribed, nothing live and the event recorded (one per contact, by its dedupe
    key), and changes nothing."""
    now = ctx.clock.now()
    already = contact.unsubscribed_at is not None
    if not already:
        contact.unsubscribed_at = now
        contact.updated_at = now
    live = session.scalars(
        select(Enrollment)
        .where(
            Enrollment.contact_id == contact.id,
            Enrollment.state.in_(LIVE_ENROLLMENT_STATES),
        )
        .order_by(Enrollment.id)
        .with_for_update()
    ).all()
    for enrollment in live:
        end_enrollment(session, ctx, enrollment, UnenrollReason.UNSUBSCRIBED, detail)
        record(
            session, ctx, None, "enrollment.unenroll", "enrollment", enrollment.id,
            {"reason": UnenrollReason.UNSUBSCRIBED, "detail": detail},
        )  # fmt: skip
    dedupe_key = f"unsubscribe:contact:{contact.id}"
    if session.scalar(select(EmailEvent.id).where(EmailEvent.dedupe_key == dedupe_key)) is None:
        session.add(
            EmailEvent(
                kind=EventKind.UNSUBSCRIBE,
                contact_id=contact.id,
                enrollment_id=message.enrollment_id if message else None,
                message_id=message.id if message else None,
                dedupe_key=dedupe_key,
                data=data,
                occurred_at=now,
            )
        )
        record(session, ctx, None, "contact.unsubscribe", "contact", contact.id,
               {"message_id": message.id if message else None})  # fmt: skip
    return Unsubscribed(contact.id, already and not live, [e.id for e in live])


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
