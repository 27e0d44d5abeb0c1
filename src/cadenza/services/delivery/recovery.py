"""Taking back what dead or stopping workers held, and knowing when work falls due."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, update

from cadenza.domain.enums import DigestStatus, MessageStatus, TaskStatus
from cadenza.services.context import Context
from cadenza.services.delivery.claims import PENDING, SENDING, ClaimedEmail
from cadenza.services.enrollment.progress import mark_unknown
from cadenza.store.models import Enrollment, Mailbox, Message, StepRun, Task, TaskDigest


def recover_expired(ctx: Context, limit: int = 500) -> int:
    """Takes back claims whose worker died: unsent ones are pending again, handed ones unknown."""
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        runs = list(
            session.scalars(
                select(StepRun)
                .where(StepRun.status == SENDING, StepRun.locked_until < now)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        for run in runs:
            message = session.scalar(select(Message).where(Message.step_run_id == run.id))
            if message is not None and message.status == MessageStatus.HANDING:
                enrollment = session.get_one(Enrollment, run.enrollment_id)
                mark_unknown(
                    session, run, enrollment, message, "the worker stopped while handing it over"
                )
            else:
                run.status, run.locked_by, run.locked_until = PENDING, None, None
        return len(runs)


def release_unsent(ctx: Context, claims: list[ClaimedEmail], worker_id: str) -> None:
    """On shutdown: claims not yet handed over go back to pending for other workers; a
    reminder not yet handed over is due again (its unsent message dropped)."""
    ids = [c.run_id for c in claims if not c.is_reminder]
    reminders = [c for c in claims if c.is_reminder]
    if not ids and not reminders:
        return
    with ctx.db.transaction() as session:
        if ids:
            session.execute(
                update(StepRun)
                .where(
                    StepRun.id.in_(ids), StepRun.status == SENDING, StepRun.locked_by == worker_id
                )
                .values(status=PENDING, locked_by=None, locked_until=None)
            )
        for claim in reminders:
            dropped = session.execute(
                delete(Message).where(
                    Message.id == claim.message_pk, Message.status == MessageStatus.PREPARED
                )
            )
            if cast(CursorResult[Any], dropped).rowcount != 1:
                continue
            if claim.digest_id is not None:
                session.execute(
                    update(TaskDigest)
                    .where(TaskDigest.id == claim.digest_id)
                    .values(status=DigestStatus.PENDING, message_id=None, claimed_at=None)
                )
            else:
                session.execute(
                    update(Task).where(Task.id == claim.task_id).values(reminded_at=None)
                )


def next_due_at(ctx: Context) -> datetime | None:
    """When the next pending step run is due (possibly already past, if held back)."""
    with ctx.db.transaction() as session:
        return session.scalar(select(func.min(StepRun.due_at)).where(StepRun.status == PENDING))


def next_wakeup(ctx: Context) -> datetime | None:
    """The next moment a tick can send something: a step or a task reminder falls due
    (a digest is due when recorded: enrollment/reminders.py says when that comes),
    a held-back mailbox gets its next send slot, or its rolling 24-hour window frees room."""
    now = ctx.clock.now()
    unsent = (Task.status == str(TaskStatus.OPEN)) & Task.reminded_at.is_(None)
    with ctx.db.transaction() as session:
        candidates = [
            session.scalar(
                select(func.min(StepRun.due_at)).where(
                    StepRun.status == PENDING, StepRun.due_at > now
                )
            ),
            session.scalar(select(func.min(Task.remind_at)).where(unsent, Task.remind_at > now)),
        ]
        held = select(StepRun.mailbox_id).where(
            StepRun.status == PENDING, StepRun.due_at <= now, StepRun.wait_reason.is_not(None)
        )
        held_reminders = (
            select(Enrollment.mailbox_id)
            .join(Task, Task.enrollment_id == Enrollment.id)
            .where(unsent, Task.remind_at <= now)
        )
        held_digests = select(TaskDigest.mailbox_id).where(
            TaskDigest.status == DigestStatus.PENDING, TaskDigest.due_at <= now
        )
        waiting = (
            Mailbox.id.in_(held) | Mailbox.id.in_(held_reminders) | Mailbox.id.in_(held_digests)
        )
        for mailbox in session.scalars(select(Mailbox).where(waiting)):
            candidates.append(mailbox.next_send_at)
            oldest = session.scalar(
                select(func.min(Message.sent_at)).where(
                    Message.mailbox_id == mailbox.id, Message.sent_at > now - timedelta(hours=24)
                )
            )
            candidates.append(oldest + timedelta(hours=24, seconds=1) if oldest else None)
    future = [c for c in candidates if c is not None and c > now]
    return min(future) if future else None
