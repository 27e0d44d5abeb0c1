"""After a restore: holding for review every email the old installation may have sent.

A backup is the database as it was at one instant; the installation it came from may
have gone on sending after that instant. Restored as it is, the copy would show those
emails as still to send and the worker would send them a second time. So before the
restored database is used, every email that may have left since the backup is marked
`unknown`, the state a crash mid-send leaves (docs/engine.md): never resent
automatically, listed by `cadenza outbox list --status unknown` and settled by
`cadenza outbox review` (delivered: the sequence goes on; not delivered: sent now).

What may have left (docs/backup.md), with `now` the moment of the restore:
- a claimed email (step run `sending`) or one being handed over (`handing`);
- an email step run pending and due by now, whatever its due time (one due before the
  backup may have been held back by a throttle and sent just after it);
- a paused one that could have been resumed after the backup and fallen due by now;
- a task reminder in flight, or due by now and not yet sent.
A step run due later continues normally: the old installation, stopped before the
restore, cannot have sent it.

An email the worker had not composed yet is composed now (compose(), as a claim would),
so the review shows a person exactly what would have gone out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadenza.domain.enums import MessageStatus, StepRunStatus, StepType, TaskStatus
from cadenza.domain.errors import CadenzaError
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.delivery.compose import MessageSources, compose, compose_reminder
from cadenza.services.enrollment.progress import mark_unknown
from cadenza.store.models import Contact, Enrollment, Mailbox, Message, StepRun, Task, User

_EMAIL_STEPS = (StepType.EMAIL, StepType.MANUAL_EMAIL)
_UNSENT = (MessageStatus.PREPARED, MessageStatus.HANDING)


@dataclass(frozen=True)
class RestoreHold:
    """What the restore held for review: step runs and task reminders marked unknown."""

    backup_taken_at: datetime | None
    restored_at: datetime
    steps: int
    reminders: int
    not_composed: int  # due steps left pending: they cannot render (the worker fails them)


def _why(taken_at: datetime | None) -> str:
    when = f"at {taken_at:%Y-%m-%d %H:%M} UTC" if taken_at else "at an unknown time"
    return (
        f"restored from a backup taken {when}: the installation it came from may have "
        "sent this email after the backup"
    )


def _may_have_left(
    run: StepRun, enrollment: Enrollment, taken_at: datetime | None, now: datetime
) -> bool:
    if run.status in (StepRunStatus.SENDING, StepRunStatus.PENDING):
        return run.status == StepRunStatus.SENDING or run.due_at <= now
    # Paused: resumed at the earliest just after the backup, it fell due its remaining
    # delay later (control.resumed_due); a backup of unknown time could be any age.
    if taken_at is None or enrollment.paused_at is None:
        return True
    remaining = max(run.due_at - enrollment.paused_at, timedelta(0))
    return taken_at + remaining <= now


def _suspect_runs(
    session: Session, taken_at: datetime | None, now: datetime
) -> list[tuple[StepRun, Enrollment]]:
    rows = session.execute(
        select(StepRun, Enrollment)
        .join(Enrollment, Enrollment.id == StepRun.enrollment_id)
        .where(
            StepRun.step_type.in_(_EMAIL_STEPS),
            StepRun.status.in_(
                (StepRunStatus.SENDING, StepRunStatus.PENDING, StepRunStatus.PAUSED)
            ),
        )
        .order_by(StepRun.id)
        .with_for_update(of=StepRun)
    )
    return [(run, e) for run, e in rows if _may_have_left(run, e, taken_at, now)]


def _hold_steps(
    session: Session, ctx: Context, taken_at: datetime | None, now: datetime
) -> tuple[int, int]:
    suspects = _suspect_runs(session, taken_at, now)
    if not suspects:
        return 0, 0
    sources = MessageSources.load(session, suspects, ctx)
    contacts = {c.id: c for c in session.scalars(select(Contact).where(
        Contact.id.in_({e.contact_id for _, e in suspects})))}  # fmt: skip
    users = {u.id: u for u in session.scalars(select(User).where(
        User.id.in_({e.enrolled_by_id for _, e in suspects})))}  # fmt: skip
    mailboxes = {m.id: m for m in session.scalars(select(Mailbox).where(
        Mailbox.id.in_({run.mailbox_id for run, _ in suspects})))}  # fmt: skip
    held = not_composed = 0
    for run, enrollment in suspects:
        message = sources.existing.get(run.id)
        if message is None:
            try:
                message = compose(
                    sources,
                    run,
                    enrollment,
                    contacts[enrollment.contact_id],
                    users[enrollment.enrolled_by_id],
                    mailboxes[run.mailbox_id],
                    now,
                )
            except CadenzaError:
                not_composed += 1  # as the old installation's worker, it fails this step
                continue
            session.add(message)
        if message.status in _UNSENT:
            mark_unknown(session, run, enrollment, message, _why(taken_at))
            held += 1
    return held, not_composed


def _hold_reminders(session: Session, taken_at: datetime | None, now: datetime) -> int:
    """Task reminders: one in flight, or due and not yet sent, is unknown too."""
    why = _why(taken_at)
    held = 0
    in_flight = session.scalars(
        select(Message)
        .where(Message.step_run_id.is_(None), Message.status.in_(_UNSENT))
        .with_for_update()
    )
    for message in in_flight:
        message.status, message.smtp_reply = MessageStatus.UNKNOWN, why
        held += 1
    due = session.execute(
        select(Task, User, Mailbox)
        .join(User, User.id == Task.owner_id)
        .join(Enrollment, Enrollment.id == Task.enrollment_id)
        .join(Mailbox, Mailbox.id == Enrollment.mailbox_id)
        .where(Task.status == TaskStatus.OPEN, Task.remind_at <= now, Task.reminded_at.is_(None))
        .order_by(Task.id)
        .with_for_update(of=Task)
    )
    for task, owner, mailbox in due:
        task.reminded_at = now
        message = compose_reminder(task, owner, mailbox, now)
        message.status, message.smtp_reply = MessageStatus.UNKNOWN, why
        session.add(message)
        held += 1
    return held


def hold_after_restore(ctx: Context, backup_taken_at: datetime | None) -> RestoreHold:
    """Marks `unknown` every email the old installation may have sent since the backup
    (the module's docstring says which), audit-logged, in one transaction. Run on the
    restored database before any worker starts on it, by the restore itself (no acting
    user: the restored database's users are not the operator's)."""
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        steps, not_composed = _hold_steps(session, ctx, backup_taken_at, now)
        reminders = _hold_reminders(session, backup_taken_at, now)
        taken = backup_taken_at.isoformat() if backup_taken_at else None
        record(
            session,
            ctx,
            None,
            "installation.restore",
            "installation",
            None,
            {
                "backup_taken_at": taken,
                "held_steps": steps,
                "held_reminders": reminders,
                "not_composed": not_composed,
            },
        )
    return RestoreHold(backup_taken_at, now, steps, reminders, not_composed)
