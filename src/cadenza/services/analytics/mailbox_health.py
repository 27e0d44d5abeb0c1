"""One mailbox's health: is it connected, is it sending, is its inbox read, and what
holds its emails back.

A rep whose sequence "stopped working" needs one place that answers those questions
from what the engine recorded, without reading logs: the web app's mailbox page,
`GET /api/v1/mailboxes/{id}/health` and `cadenza mailboxes health` all show this read.
It reads only; every figure comes from rows the engine already writes (messages,
delivery attempts, step runs, inbox cursors, email events).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from cadenza.domain.delivery_outcome import DeliveryOutcome
from cadenza.domain.enums import (
    EventKind,
    MessageStatus,
    StepRunStatus,
    StepType,
    StepWaitReason,
)
from cadenza.domain.policy import Action
from cadenza.services.accounts.mailboxes import MailboxView, authorize_mailbox, misses_replies
from cadenza.services.context import Context
from cadenza.services.delivery.claims import counted_last_24h
from cadenza.services.lookup import fetch
from cadenza.store.models import (
    DeliveryAttempt,
    EmailEvent,
    InboxCursor,
    Mailbox,
    Message,
    StepRun,
)

# How far back "replies, bounces and auto-replies seen" looks by default.
SIGNAL_DAYS = 7
# The signals a mailbox's inbox (or the events API) reports about what it sent.
_SIGNAL_KINDS = (EventKind.REPLY, EventKind.BOUNCE, EventKind.AUTO_REPLY)
_FAILED_OUTCOMES = tuple(o for o in DeliveryOutcome if o != DeliveryOutcome.SENT)


@dataclass(frozen=True)
class InboxFolderHealth:
    """The poller's last visit to one folder; `last_error` None means it went well."""

    folder: str
    polled_at: datetime
    last_error: str | None


@dataclass(frozen=True)
class LastError:
    """The most recent hand-over that did not end in `sent`, with the server's words."""

    message_id: int
    outcome: str
    code: int | None
    reply: str | None
    at: datetime


@dataclass(frozen=True)
class MailboxHealth:
    mailbox: MailboxView
    # Replies stop sequences only when the inbox is read: without IMAP settings a
    # mailbox keeps following up after a reply, which the pages must say plainly.
    detects_replies: bool
    misses_replies: bool  # an SMTP mailbox that does not detect them: warn (mailboxes.py)
    last_sent_at: datetime | None
    last_error: LastError | None
    inbox: list[InboxFolderHealth]
    sent_last_minute: int
    # What the daily limit counts: sent in the last 24 hours and in flight now.
    sent_last_24h: int
    due_now: int
    waiting: dict[str, int]  # pending email steps held back, by wait reason
    needs_review: int  # messages whose fate is unknown until a person decides
    signals: dict[str, int]  # replies, bounces and auto-replies in the last `signal_days`
    signal_days: int
    checked_at: datetime


def mailbox_health(
    ctx: Context, mailbox_id: int, *, actor_id: int | None = None, signal_days: int = SIGNAL_DAYS
) -> MailboxHealth:
    """Reads like the mailbox itself: whoever may not read it is told it does not exist."""
    now = ctx.clock.now()
    with ctx.db.read() as session:
        mailbox = fetch(session, Mailbox, mailbox_id)
        authorize_mailbox(session, actor_id, mailbox, Action.READ)
        return MailboxHealth(
            mailbox=MailboxView.of(mailbox),
            detects_replies=mailbox.imap_host is not None,
            misses_replies=misses_replies(mailbox),
            last_sent_at=session.scalar(
                select(func.max(Message.sent_at)).where(
                    Message.mailbox_id == mailbox_id, Message.status == MessageStatus.SENT
                )
            ),
            last_error=_last_error(session, mailbox_id),
            inbox=[
                InboxFolderHealth(c.folder, c.polled_at, c.last_error)
                for c in session.scalars(
                    select(InboxCursor)
                    .where(InboxCursor.mailbox_id == mailbox_id)
                    .order_by(InboxCursor.folder)
                )
            ],
            sent_last_minute=session.scalar(
                select(func.count())
                .select_from(Message)
                .where(
                    Message.mailbox_id == mailbox_id,
                    Message.sent_at > now - timedelta(minutes=1),
                )
            )
            or 0,
            sent_last_24h=counted_last_24h(session, mailbox_id, now),
            due_now=0 if not mailbox.connected else _due_now(session, mailbox_id, now),
            waiting=_waiting_by_reason(session, mailbox_id, now, connected=mailbox.connected),
            needs_review=session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.mailbox_id == mailbox_id, Message.status == MessageStatus.UNKNOWN)
            )
            or 0,
            signals=_signals(session, mailbox_id, now - timedelta(days=signal_days)),
            signal_days=signal_days,
            checked_at=now,
        )


def _pending_emails(mailbox_id: int) -> ColumnElement[bool]:
    return (
        (StepRun.mailbox_id == mailbox_id)
        & (StepRun.status == StepRunStatus.PENDING)
        & (StepRun.step_type == StepType.EMAIL)
    )


def _count(session: Session, *conditions: ColumnElement[bool]) -> int:
    return session.scalar(select(func.count()).select_from(StepRun).where(*conditions)) or 0


def _due_now(session: Session, mailbox_id: int, now: datetime) -> int:
    """Due emails with no reason to wait: what the next claim will take, limits allowing."""
    return _count(
        session, _pending_emails(mailbox_id), StepRun.due_at <= now, StepRun.wait_reason.is_(None)
    )


def _waiting_by_reason(
    session: Session, mailbox_id: int, now: datetime, *, connected: bool
) -> dict[str, int]:
    """The reasons the last claims recorded. While the mailbox is disconnected no claim
    runs, so a reason recorded before (a limit) is stale: every due email waits for the
    mailbox then."""
    if not connected:
        count = _count(session, _pending_emails(mailbox_id), StepRun.due_at <= now)
        return {str(StepWaitReason.MAILBOX_DISCONNECTED): count} if count else {}
    rows = session.execute(
        select(StepRun.wait_reason, func.count())
        .where(_pending_emails(mailbox_id), StepRun.wait_reason.is_not(None))
        .group_by(StepRun.wait_reason)
    )
    return {str(reason): count for reason, count in rows}


def _last_error(session: Session, mailbox_id: int) -> LastError | None:
    attempt = session.scalar(
        select(DeliveryAttempt)
        .join(Message, Message.id == DeliveryAttempt.message_id)
        .where(Message.mailbox_id == mailbox_id, DeliveryAttempt.outcome.in_(_FAILED_OUTCOMES))
        .order_by(DeliveryAttempt.at.desc(), DeliveryAttempt.id.desc())
        .limit(1)
    )
    if attempt is None:
        return None
    outcome = str(attempt.outcome)
    return LastError(attempt.message_id, outcome, attempt.code, attempt.reply, attempt.at)


def _signals(session: Session, mailbox_id: int, since: datetime) -> dict[str, int]:
    rows = session.execute(
        select(EmailEvent.kind, func.count())
        .join(Message, Message.id == EmailEvent.message_id)
        .where(
            Message.mailbox_id == mailbox_id,
            EmailEvent.kind.in_(_SIGNAL_KINDS),
            EmailEvent.occurred_at >= since,
            EmailEvent.revoked_at.is_(None),
        )
        .group_by(EmailEvent.kind)
    )
    counts = {str(kind): 0 for kind in _SIGNAL_KINDS}
    counts.update({str(kind): count for kind, count in rows})
    return counts
