"""One message found in a mailbox's inbox: classify it, match it to what we sent, act.

Matching, in order: the Message-IDs it answers (In-Reply-To, References) against our
`messages.message_id`; for a bounce, the returned message's Message-ID, else the failed
recipient's address; for anything else, the sender's address, if that contact is live
in a sequence sending from this mailbox. Mail that matches nothing is left alone and
not recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadenza.domain.enums import LIVE_ENROLLMENT_STATES, EventKind
from cadenza.domain.inbound.bounce import Bounce
from cadenza.domain.inbound.classify import InboundKind, classify
from cadenza.domain.inbound.parse import Inbound, parse
from cadenza.services.contacts import find_by_email
from cadenza.services.context import Context
from cadenza.services.lookup import fetch
from cadenza.services.signals import Outcome, Signal, apply
from cadenza.store.models import Enrollment, Mailbox, Message


@dataclass(frozen=True)
class InboundResult:
    kind: str  # reply, auto_reply, bounce, soft_bounce, unrelated
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
            return InboundResult("unrelated")  # our own copy, or a note to self
        if verdict.kind is InboundKind.BOUNCE:
            return _bounce(session, ctx, mailbox, inbound, verdict.bounce, key)
        message, contact_id = _match(session, mailbox, inbound)
        if message is None and contact_id is None:
            return InboundResult("unrelated")
        is_auto = verdict.kind is InboundKind.AUTO_REPLY
        signal = Signal(
            kind=EventKind.AUTO_REPLY if is_auto else EventKind.REPLY,
            dedupe_key=key,
            message_pk=message.id if message is not None else None,
            contact_id=contact_id,
            mailbox_id=mailbox.id,
            return_date=verdict.return_date,
            data={
                "source": "inbox",
                "mailbox_id": mailbox.id,
                "from": inbound.sender,
                "subject": inbound.subject[:300],
                "inbound_message_id": inbound.message_id,
                "matched_by": "message_id" if message is not None else "sender",
                **({"return_date": verdict.return_date.isoformat()} if verdict.return_date else {}),
            },
        )
        return InboundResult(str(signal.kind), (apply(session, ctx, signal),))


def _match(
    session: Session, mailbox: Mailbox, inbound: Inbound
) -> tuple[Message | None, int | None]:
    message = _our_message(session, inbound.referenced_ids)
    if message is not None:
        return message, message.contact_id
    if inbound.sender is None:
        return None, None
    contact = find_by_email(session, inbound.sender)
    if contact is None:
        return None, None
    live_here = session.scalar(
        select(Enrollment.id)
        .where(
            Enrollment.contact_id == contact.id,
            Enrollment.mailbox_id == mailbox.id,
            Enrollment.state.in_([str(s) for s in LIVE_ENROLLMENT_STATES]),
        )
        .limit(1)
    )
    return None, (contact.id if live_here is not None else None)


def _our_message(session: Session, message_ids) -> Message | None:
    for message_id in message_ids:
        found = session.scalar(select(Message).where(Message.message_id == message_id))
        if found is not None:
            return found
    return None


def _bounce(session, ctx, mailbox, inbound: Inbound, bounce: Bounce, key: str) -> InboundResult:
    """One event per failed recipient; the returned message names the step when quoted."""
    quoted = (bounce.original_message_id,) if bounce.original_message_id else ()
    original = _our_message(session, quoted)
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
        signal = Signal(
            kind=EventKind.BOUNCE,
            dedupe_key=f"{key}:{recipient.address or '-'}",
            message_pk=message.id if message is not None else None,
            contact_id=contact_id,
            mailbox_id=mailbox.id,
            hard=recipient.hard,
            data={
                "source": "inbox",
                "mailbox_id": mailbox.id,
                "hard": recipient.hard,
                "status": recipient.status,
                "recipient": recipient.address,
                "diagnostic": (recipient.diagnostic or "")[:500] or None,
                "rfc3464": bounce.standard,
                "inbound_message_id": inbound.message_id,
            },
        )
        outcomes.append(apply(session, ctx, signal))
    if not outcomes:
        return InboundResult("unrelated")
    return InboundResult("bounce" if bounce.hard else "soft_bounce", tuple(outcomes))
