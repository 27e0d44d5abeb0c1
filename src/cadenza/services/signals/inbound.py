"""One message found in a mailbox's inbox: classify it, match it to what we sent, act.

Matching, in order: the Message-IDs it answers (In-Reply-To, References) against the
`messages.message_id` of what THIS mailbox sent; for a bounce, the returned message's
Message-ID, else the failed recipient's address; for anything else, the sender's
address, if that contact is live in a sequence sending from this mailbox. Mail that
matches nothing is left alone and not recorded.

Authenticity: anyone can send a mailbox something shaped like a bounce or an
out-of-office. So a bounce or auto-reply acts on a contact only when it names a message
this mailbox sent (the Message-ID in the report or the returned headers, or in
In-Reply-To/References); one that names only an address is recorded against the
contact, marked `data.unverified`, and changes nothing. A person's reply matched by its
sender still acts: it can only stop sending, which is what a reply asks for.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadenza.domain.enums import LIVE_ENROLLMENT_STATES, EventKind, InboundVerdict
from cadenza.domain.inbound.bounce import Bounce
from cadenza.domain.inbound.classify import InboundKind, classify
from cadenza.domain.inbound.parse import Inbound, parse
from cadenza.services.context import Context
from cadenza.services.crm.contacts import find_by_email
from cadenza.services.lookup import fetch
from cadenza.services.signals.effects import Outcome, Signal, apply
from cadenza.store.models import Enrollment, Mailbox, Message


@dataclass(frozen=True)
class InboundResult:
    kind: InboundVerdict
    outcomes: tuple[Outcome, ...] = ()

    @property
    def recorded(self) -> bool:
        return any(not o.duplicate for o in self.outcomes)


def ingest(ctx: Context, mailbox_id: int, raw: bytes, fallback_key: str) -> InboundResult:
    """Classifies and applies one inbound message in one transaction.

    `fallback_key` identifies the message when it has no Message-ID (folder,
    UIDVALIDITY and UID, from the poller), so reading it again changes nothing.
    """
    inbound = parse(raw)
    key = f"inbox:{mailbox_id}:{inbound.message_id or fallback_key}"
    verdict = classify(inbound, ctx.clock.now().date())
    with ctx.db.transaction() as session:
        mailbox = fetch(session, Mailbox, mailbox_id)
        if inbound.sender == mailbox.from_email:
            return InboundResult(InboundVerdict.UNRELATED)  # our own copy, or a note to self
        if verdict.kind is InboundKind.BOUNCE:
            return _bounce(session, ctx, mailbox, inbound, verdict.bounce, key)
        message, contact_id = _match(session, mailbox, inbound)
        if message is None and contact_id is None:
            return InboundResult(InboundVerdict.UNRELATED)
        is_auto = verdict.kind is InboundKind.AUTO_REPLY
        unverified = is_auto and message is None
        signal = Signal(
            kind=EventKind.AUTO_REPLY if is_auto else EventKind.REPLY,
            dedupe_key=key,
            message_pk=message.id if message is not None else None,
            contact_id=contact_id,
            mailbox_id=mailbox.id,
            return_date=verdict.return_date,
            acts=not unverified,
            enrollment_id=_live_here(session, mailbox, contact_id) if unverified else None,
            data={
                "source": "inbox",
                "mailbox_id": mailbox.id,
                "from": inbound.sender,
                "subject": inbound.subject[:300],
                "inbound_message_id": inbound.message_id,
                "matched_by": "message_id" if message is not None else "sender",
                **({"return_date": verdict.return_date.isoformat()} if verdict.return_date else {}),
                **({"unverified": _NOT_OURS} if unverified else {}),
            },
        )
        return InboundResult(InboundVerdict(signal.kind), (apply(session, ctx, signal),))


_NOT_OURS = "names no message this mailbox sent"


def _match(
    session: Session, mailbox: Mailbox, inbound: Inbound
) -> tuple[Message | None, int | None]:
    message = _our_message(session, mailbox, inbound.referenced_ids)
    if message is not None:
        return message, message.contact_id
    if inbound.sender is None:
        return None, None
    contact = find_by_email(session, inbound.sender)
    if contact is None:
        return None, None
    live_here = _live_here(session, mailbox, contact.id)
    return None, (contact.id if live_here is not None else None)


def _live_here(session: Session, mailbox: Mailbox, contact_id: int | None) -> int | None:
    """The contact's live enrollment sending from this mailbox, if any."""
    if contact_id is None:
        return None
    return session.scalar(
        select(Enrollment.id)
        .where(
            Enrollment.contact_id == contact_id,
            Enrollment.mailbox_id == mailbox.id,
            Enrollment.state.in_(LIVE_ENROLLMENT_STATES),
        )
        .order_by(Enrollment.id)
        .limit(1)
    )


def _our_message(session: Session, mailbox: Mailbox, message_ids) -> Message | None:
    """A message this mailbox sent: another mailbox's Message-ID proves nothing here."""
    for message_id in message_ids:
        found = session.scalar(
            select(Message).where(
                Message.message_id == message_id, Message.mailbox_id == mailbox.id
            )
        )
        if found is not None:
            return found
    return None


def _bounce(session, ctx, mailbox, inbound: Inbound, bounce: Bounce, key: str) -> InboundResult:
    """One event per failed recipient; the returned message names the step when quoted.

    Only a recipient of the quoted message bounces for real; any other address the
    report names (or every address, when it quotes nothing we sent) is recorded
    against its contact and changes nothing.
    """
    quoted = (bounce.original_message_id,) if bounce.original_message_id else ()
    original = _our_message(session, mailbox, quoted)
    outcomes = []
    for recipient in bounce.recipients:
        message, contact_id = original, original.contact_id if original else None
        elsewhere = recipient.address and message and recipient.address != message.to_email.lower()
        if elsewhere:
            message = None  # the report is about someone else on that message
        if message is None and recipient.address:
            contact = find_by_email(session, recipient.address)
            contact_id = contact.id if contact is not None else None
        if message is None and contact_id is None:
            continue
        unverified = message is None
        signal = Signal(
            kind=EventKind.BOUNCE,
            dedupe_key=f"{key}:{recipient.address or '-'}",
            message_pk=message.id if message is not None else None,
            contact_id=contact_id,
            mailbox_id=mailbox.id,
            hard=recipient.hard,
            acts=not unverified,
            enrollment_id=_live_here(session, mailbox, contact_id) if unverified else None,
            data={
                "source": "inbox",
                "mailbox_id": mailbox.id,
                "hard": recipient.hard,
                "status": recipient.status,
                "recipient": recipient.address,
                "diagnostic": (recipient.diagnostic or "")[:500] or None,
                "rfc3464": bounce.standard,
                "inbound_message_id": inbound.message_id,
                **({"unverified": _NOT_OURS} if unverified else {}),
            },
        )
        outcomes.append(apply(session, ctx, signal))
    if not outcomes:
        return InboundResult(InboundVerdict.UNRELATED)
    return InboundResult(
        InboundVerdict.BOUNCE if bounce.hard else InboundVerdict.SOFT_BOUNCE, tuple(outcomes)
    )
