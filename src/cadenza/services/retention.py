"""The retention policy: email bodies and open/click events are kept only so long.

Off by default. `CADENZA_RETENTION_BODY_DAYS` replaces the bodies of emails older than
that (by when they were composed) with a note, keeping the headers (who, when, which
subject, what the server answered), so the outbox, the timelines and the reply
matching keep working. `CADENZA_RETENTION_EVENT_DAYS` deletes open and click events
older than that: they say when a person read what and where they clicked, the most
behavioural data Cadenza holds. The analytics count opens and clicks from these
events, so old ones leave the figures (docs/contact-data.md); replies, bounces,
unsubscribes and meetings are kept, since they decide who may be emailed again.

The worker's tick runs it (worker_jobs.run_clocked_jobs), at most once per
`CADENZA_RETENTION_INTERVAL_MINUTES` whichever worker gets to it (job_marks), in batches
of their own transactions; a run that has more than its share to do leaves the mark
unset so the next tick goes on. An email that is not final (prepared, being handed
over, or of unknown outcome waiting for a person) is never touched.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import delete, literal_column, select, update
from sqlalchemy.exc import IntegrityError

from cadenza.domain.enums import ENGAGEMENT_KINDS, MessageStatus
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.counters import messages as counted_messages
from cadenza.services.counters.messages import EventFacts
from cadenza.store.db import Database
from cadenza.store.models import EmailEvent, JobMark, Message

JOB = "retention"
BATCHES_PER_RUN = 20
NOTE = "[body removed after {days} days by the retention policy]"
# Only emails whose outcome is settled: never one a worker holds or a person must review.
FINAL = (MessageStatus.SENT, MessageStatus.FAILED)


# When this process need not look again, per database handle: the worker ticks every
# second, and between runs a tick should cost nothing at all.
_not_before: weakref.WeakKeyDictionary[Database, datetime] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class RetentionReport:
    bodies_removed: int = 0
    events_deleted: int = 0
    finished: bool = True  # False: more to do than one run's share, the next tick goes on


def run_due(ctx: Context, batch_size: int = 500) -> RetentionReport:
    """The worker's entry: nothing at all when the policy is off or this process saw a
    recent run; one primary-key read when another worker may have run meanwhile; else a
    run."""
    settings = ctx.settings
    if not (settings.retention_body_days or settings.retention_event_days):
        return RetentionReport()
    now = ctx.clock.now()
    not_before = _not_before.get(ctx.db)
    if not_before is not None and now < not_before:
        return RetentionReport()  # this process knows: not even the mark is read
    interval = timedelta(minutes=settings.retention_interval_minutes)
    with ctx.db.read() as session:
        mark = session.get(JobMark, JOB)
    if mark is not None and now < mark.ran_at + interval:
        _not_before[ctx.db] = mark.ran_at + interval
        return RetentionReport()
    report = run(ctx, batch_size)
    if report.finished:
        _not_before[ctx.db] = now + interval
    return report


def run(ctx: Context, batch_size: int = 500) -> RetentionReport:
    """One run now, whatever the mark says (`cadenza` tests and operators call it)."""
    settings = ctx.settings
    now = ctx.clock.now()
    bodies, bodies_done = 0, True
    events, events_done = 0, True
    if settings.retention_body_days:
        cutoff = now - timedelta(days=settings.retention_body_days)
        bodies, bodies_done = _remove_bodies(ctx, cutoff, settings.retention_body_days, batch_size)
    if settings.retention_event_days:
        cutoff = now - timedelta(days=settings.retention_event_days)
        events, events_done = _delete_events(ctx, cutoff, batch_size)
    finished = bodies_done and events_done
    with ctx.db.transaction() as session:
        if bodies or events:
            data = {"bodies_removed": bodies, "events_deleted": events}
            record(session, ctx, None, "retention.run", "installation", None, data)
        if finished:
            _mark(session, now)
    return RetentionReport(bodies, events, finished)


def _remove_bodies(ctx: Context, cutoff: datetime, days: int, batch_size: int) -> tuple[int, bool]:
    note = NOTE.format(days=days)
    removed = {"body_html": note, "body_text": note, "raw": None}
    done = 0
    for _ in range(BATCHES_PER_RUN):
        with ctx.db.transaction() as session:
            ids = list(
                session.scalars(
                    select(Message.id)
                    .where(
                        Message.body_removed_at.is_(None),
                        Message.created_at < cutoff,
                        # `|| ''`: offered ix_messages_status_id, SQLite's planner (no
                        # statistics) walks every sent email and sorts; the partial index
                        # of kept bodies is the range this reads (the `mailbox_id + 0` way)
                        Message.status.op("||")(literal_column("''")).in_([str(s) for s in FINAL]),
                    )
                    .order_by(Message.created_at)
                    .limit(batch_size)
                )
            )
            if ids:
                session.execute(
                    update(Message)
                    .where(Message.id.in_(ids), Message.status.in_(FINAL))
                    .values(**removed, body_removed_at=ctx.clock.now())
                )
        done += len(ids)
        if len(ids) < batch_size:
            return done, True
    return done, False


def _delete_events(ctx: Context, cutoff: datetime, batch_size: int) -> tuple[int, bool]:
    done = 0
    for _ in range(BATCHES_PER_RUN):
        with ctx.db.transaction() as session:
            ids = list(
                session.scalars(
                    select(EmailEvent.id)
                    .where(EmailEvent.kind.in_(ENGAGEMENT_KINDS), EmailEvent.occurred_at < cutoff)
                    .limit(batch_size)
                )
            )
            if ids:
                gone = session.execute(
                    delete(EmailEvent)
                    .where(EmailEvent.id.in_(ids))
                    .returning(*(getattr(EmailEvent, f.name) for f in fields(EventFacts)))
                    .execution_options(synchronize_session=False)
                )
                # what this statement deleted, not what `ids` named: another worker's
                # run may have deleted some of them first
                counted_messages.events_deleted(session, [EventFacts(*row) for row in gone])
        done += len(ids)
        if len(ids) < batch_size:
            return done, True
    return done, False


def _mark(session, now: datetime) -> None:
    """Upsert of the job's mark; two workers finishing together both succeed."""
    changed = session.execute(update(JobMark).where(JobMark.name == JOB).values(ran_at=now))
    if changed.rowcount:
        return
    try:
        with session.begin_nested():
            session.add(JobMark(name=JOB, ran_at=now))
    except IntegrityError:
        session.execute(update(JobMark).where(JobMark.name == JOB).values(ran_at=now))
