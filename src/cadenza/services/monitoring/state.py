"""The installation's state as /metrics reports it, read in one transaction.

Every figure is a count of rows as they are now, so any web process gives the same
answer, whichever worker did the work and on whichever host. The queries that run on
every scrape are served by the partial indexes the engine already uses (pending step
runs, pending webhook deliveries) or by ix_messages_unsettled; the counts of
enrollments and of webhook deliveries by state read their whole tables, which is what
a count of them costs (docs/operations.md, "Cost of a scrape").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select, text
from sqlalchemy.orm import Session

from cadenza.domain.enums import MessageStatus, WebhookDeliveryStatus
from cadenza.services.context import Context
from cadenza.store import migrate
from cadenza.store.models import (
    Enrollment,
    InboxCursor,
    Mailbox,
    Message,
    StepRun,
    WebhookDelivery,
)

UNSETTLED = (MessageStatus.HANDING, MessageStatus.UNKNOWN)
# The partial indexes' own predicates, as literals: SQLite uses a partial index only for
# a query whose WHERE names its predicate, which a bound parameter does not.
UNSETTLED_ROWS = text("messages.status IN ('handing', 'unknown')")
PENDING_ROWS = text("step_runs.status = 'pending'")
WAITING_ROWS = text("step_runs.status = 'pending' AND step_runs.wait_reason IS NOT NULL")


@dataclass(frozen=True)
class MailboxState:
    mailbox_id: int
    address: str
    connected: bool
    per_minute_limit: int
    daily_limit: int
    sent_24h: int


@dataclass(frozen=True)
class PendingSteps:
    """Pending step runs of one mailbox with one wait reason ("none": nothing holds them
    but a worker, or only their time), due now or later."""

    mailbox_id: int
    reason: str
    due: bool
    count: int


@dataclass(frozen=True)
class InboxState:
    mailbox_id: int
    folder: str
    polled_at: datetime
    failing: bool


@dataclass(frozen=True)
class InstallationState:
    at: datetime
    mailboxes: list[MailboxState]
    unsettled_messages: dict[tuple[int, str], int]  # (mailbox, handing|unknown) -> count
    pending_steps: list[PendingSteps]
    oldest_due_at: dict[int, datetime]  # mailbox -> its longest-waiting due step run
    enrollments: dict[str, int]  # state -> count
    needing_attention: int
    webhook_deliveries: dict[str, int]  # status -> count
    oldest_pending_webhook_at: datetime | None
    inboxes: list[InboxState]


def snapshot(ctx: Context) -> InstallationState:
    now = ctx.clock.now()
    with ctx.db.read() as session:
        return InstallationState(
            at=now,
            mailboxes=_mailboxes(session, now),
            unsettled_messages={
                (mailbox_id, str(status)): count
                for mailbox_id, status, count in session.execute(
                    select(Message.mailbox_id, Message.status, func.count())
                    .where(UNSETTLED_ROWS)
                    .group_by(Message.mailbox_id, Message.status)
                )
            },
            **_pending_steps(session, now),
            **_enrollments(session),
            **_webhooks(session),
            inboxes=[
                InboxState(c.mailbox_id, c.folder, c.polled_at, c.last_error is not None)
                for c in session.scalars(select(InboxCursor).order_by(InboxCursor.mailbox_id))
            ],
        )


def _mailboxes(session: Session, now: datetime) -> list[MailboxState]:
    """One index range per mailbox (ix_messages_mailbox_sent) for its last 24 hours."""
    states = []
    for mailbox in session.scalars(select(Mailbox).order_by(Mailbox.id)):
        sent = session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.mailbox_id == mailbox.id, Message.sent_at > now - timedelta(hours=24))
        )
        states.append(
            MailboxState(
                mailbox.id,
                mailbox.from_email,
                mailbox.connected,
                mailbox.per_minute_limit,
                mailbox.daily_limit,
                sent or 0,
            )
        )
    return states


def _pending_steps(session: Session, now: datetime) -> dict:
    """Counts over two partial indexes, never the step runs themselves: every pending
    run by mailbox (ix_step_runs_mailbox_due), and those held for a reason
    (ix_step_runs_waiting, a few); "none" is the difference."""
    groups: list[PendingSteps] = []
    oldest: dict[int, datetime] = {}
    for due, when in ((True, StepRun.due_at <= now), (False, StepRun.due_at > now)):
        totals = {
            mailbox_id: (count, first)
            for mailbox_id, count, first in session.execute(
                select(StepRun.mailbox_id, func.count(), func.min(StepRun.due_at))
                .where(PENDING_ROWS, when)
                .group_by(StepRun.mailbox_id)
            )
        }
        held: dict[int, int] = {}
        for mailbox_id, reason, count in session.execute(
            select(StepRun.mailbox_id, StepRun.wait_reason, func.count())
            .where(WAITING_ROWS, when)
            .group_by(StepRun.mailbox_id, StepRun.wait_reason)
        ):
            groups.append(PendingSteps(mailbox_id, str(reason), due, count))
            held[mailbox_id] = held.get(mailbox_id, 0) + count
        for mailbox_id, (count, first) in totals.items():
            if count > held.get(mailbox_id, 0):
                groups.append(
                    PendingSteps(mailbox_id, "none", due, count - held.get(mailbox_id, 0))
                )
            if due:
                oldest[mailbox_id] = first
    return {"pending_steps": groups, "oldest_due_at": oldest}


def _enrollments(session: Session) -> dict:
    rows = session.execute(
        select(
            Enrollment.state,
            func.count(),
            func.sum(case((Enrollment.needs_attention.is_(True), 1), else_=0)),
        ).group_by(Enrollment.state)
    ).all()
    return {
        "enrollments": {str(state): count for state, count, _ in rows},
        "needing_attention": sum(int(flagged or 0) for _, _, flagged in rows),
    }


def _webhooks(session: Session) -> dict:
    counts = session.execute(
        select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
    )
    oldest = session.scalar(
        select(func.min(WebhookDelivery.next_attempt_at)).where(
            WebhookDelivery.status == WebhookDeliveryStatus.PENDING
        )
    )
    return {
        "webhook_deliveries": {str(status): count for status, count in counts},
        "oldest_pending_webhook_at": oldest,
    }


@dataclass(frozen=True)
class SchemaVersion:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def schema_version(ctx: Context) -> SchemaVersion:
    current, head = migrate.versions(ctx.db)
    return SchemaVersion(current, head)
