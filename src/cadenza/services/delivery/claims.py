"""Claiming due emails: which mailbox, which steps, which send slots, which message.

A claim holds each of its mailboxes until it commits (`_claimable`), so the mailbox's
send slots (its throttle) are shared by all workers and the emails of one mailbox are
granted slots in due order. Each granted step's message is composed and stored in the
same transaction, under a lease (see handover.py for what happens next).

Task reminders (an email to the task's owner, from the enrollment's mailbox) are
claimed here too, after the mailbox's due steps: they take the mailbox's send slots,
count against its daily limit, and get a message row like any other email (the
outbox shows them). A reminder has no step run: its task is marked reminded when it
is claimed, so it is sent at most once. A user's daily task digest (enrollment/
reminders.py records one per user and local day) is claimed the same way, from the
user's own mailbox, after the reminders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from cadenza.domain import schedule
from cadenza.domain.contact_fields import parse_timezone
from cadenza.domain.enums import (
    DigestStatus,
    MessageStatus,
    StepRunStatus,
    StepType,
    StepWaitReason,
    TaskStatus,
)
from cadenza.domain.errors import CadenzaError
from cadenza.domain.reminders import day_bounds
from cadenza.domain.throttle import most_slots, plan_slots, spacing
from cadenza.services.context import Context
from cadenza.services.delivery.affinity import Choice
from cadenza.services.delivery.compose import (
    DIGEST_MAX_LINES,
    DigestLine,
    MessageSources,
    compose_digest,
    compose_reminder,
    composed_columns,
    settings_of,
)
from cadenza.services.enrollment import reminders as task_reminders
from cadenza.services.enrollment.progress import fail_step
from cadenza.store.bound_rows import BoundRows, checked_after_lookup
from cadenza.store.models import (
    Contact,
    Enrollment,
    Mailbox,
    Message,
    StepRun,
    Task,
    TaskDigest,
    User,
)
from cadenza.store.prepared import Prepared
from cadenza.store.types import UTCDateTime

PENDING = StepRunStatus.PENDING
SENDING = StepRunStatus.SENDING


@dataclass(frozen=True)
class ClaimedEmail:
    run_id: int | None  # None: a task reminder (task_id) or digest (digest_id): no step run
    enrollment_id: int | None  # None: a task digest, which belongs to no enrollment
    message_pk: int
    mailbox_id: int
    slot: datetime  # not to be handed over before this instant (the mailbox's spacing)
    sender: str
    recipient: str
    raw: bytes
    spacing: timedelta  # the least time after the mailbox's previous hand-over
    last_step: bool  # no step follows: the enrollment finishes when this one is sent
    # For the events this send reports (webhooks), without another read.
    contact_id: int | None
    sequence_id: int
    step_position: int
    task_id: int | None = None  # a task reminder's task
    digest_id: int | None = None  # a task digest's row

    @property
    def is_reminder(self) -> bool:
        """A reminder or a digest: an email to a user, sent at most once, on no step."""
        return self.run_id is None


def _sends_email() -> ColumnElement[bool]:
    return or_(StepRun.step_type == str(StepType.EMAIL), StepRun.send_ready.is_(True))


def mailboxes_with_due_email(
    ctx: Context,
    limit: int = 50,
    *,
    slot_before: datetime | None = None,
    due_before: datetime | None = None,
) -> list[int]:
    """Mailboxes with due emails, most overdue first: one index range scan of due runs,
    and one of due reminders (the partial reminder index).

    With `due_before`, emails that fall due by then count as due (the claim's horizon:
    `claim_emails` takes them ahead of their due time, with slots no sooner than it).

    With `slot_before`, a mailbox whose next send slot comes later is left out unless
    one of its due runs was never told why it waits: its throttle grants nothing before
    then, so claiming it again would cost a transaction for nothing (and, a thousand
    mailboxes sending at their limits, would crowd out the ones with room). A
    disconnected mailbox or one at its daily limit stays in: its claim records why its
    steps wait.

    Grouped by `mailbox_id + 0`, not the bare column: offered the (mailbox, due) index
    for the GROUP BY, SQLite walks all of it — every pending run, due or not — instead
    of the range of due ones in the due index (bench/tick.py; EXPLAIN QUERY PLAN).
    """
    now = ctx.clock.now()
    mailbox = (StepRun.mailbox_id + 0).label("mailbox")
    has_room = (
        []
        if slot_before is None
        else [
            or_(
                Mailbox.next_send_at.is_(None),
                Mailbox.next_send_at <= slot_before,
                StepRun.wait_reason.is_(None),  # not yet told why it waits: the claim says
            )
        ]
    )
    with ctx.db.transaction() as session:
        rows = session.execute(
            select(mailbox, func.min(StepRun.due_at))
            .join(Mailbox, Mailbox.id == StepRun.mailbox_id)
            .where(
                StepRun.status == PENDING,
                StepRun.due_at <= (now if due_before is None else max(now, due_before)),
                _sends_email(),
                *has_room,
            )
            .group_by(mailbox)
            .order_by(func.min(StepRun.due_at))
            .limit(limit)
        )
        due = dict(rows.all())
        reminders = session.execute(
            select(Enrollment.mailbox_id, func.min(Task.remind_at))
            .join(Task, Task.enrollment_id == Enrollment.id)
            .where(_reminder_due(now))
            .group_by(Enrollment.mailbox_id)
        )
        digests = session.execute(
            select(TaskDigest.mailbox_id, func.min(TaskDigest.due_at))
            .where(_digest_due(now))
            .group_by(TaskDigest.mailbox_id)
        )
        for mailbox_id, remind_at in [*reminders, *digests]:
            if mailbox_id is not None and remind_at is not None:  # due ones only, as queried
                due[mailbox_id] = min(remind_at, due.get(mailbox_id, remind_at))
        return sorted(due, key=lambda m: due[m])[:limit]


def _digest_due(now: datetime) -> ColumnElement[bool]:
    """Digests waiting for their mailbox: what the partial index ix_task_digests_pending holds."""
    return (TaskDigest.status == DigestStatus.PENDING) & (TaskDigest.due_at <= now)


def _due_digests(
    session: Session, mailbox_ids: list[int], now: datetime, limit: int
) -> dict[int, list[Row[TaskDigest, User]]]:
    """Each mailbox's due digests, at most `limit` a mailbox."""
    rows = session.execute(
        select(TaskDigest, User)
        .join(User, User.id == TaskDigest.user_id)
        .where(TaskDigest.mailbox_id.in_(mailbox_ids), _digest_due(now))
        .order_by(TaskDigest.due_at, TaskDigest.id)
        .with_for_update(of=TaskDigest, skip_locked=True)
    )
    by_mailbox: dict[int, list[Row[TaskDigest, User]]] = {}
    for row in rows:
        mine = by_mailbox.setdefault(cast(int, row[0].mailbox_id), [])  # one of mailbox_ids
        if len(mine) < limit:
            mine.append(row)
    return by_mailbox


def _reminder_due(now: datetime) -> ColumnElement[bool]:
    """Reminders due and not yet sent: what the partial index ix_tasks_reminder_due holds."""
    return (Task.status == TaskStatus.OPEN) & (Task.remind_at <= now) & Task.reminded_at.is_(None)


def _due_reminders(
    session: Session, mailbox_ids: list[int], now: datetime, limit: int
) -> dict[int, list[Row[Task, User]]]:
    """Each mailbox's due task reminders (its enrollments' tasks), at most `limit` a mailbox."""
    rows = session.execute(
        select(Task, User, Enrollment.mailbox_id)
        .join(User, User.id == Task.owner_id)
        .join(Enrollment, Enrollment.id == Task.enrollment_id)
        .where(Enrollment.mailbox_id.in_(mailbox_ids), _reminder_due(now))
        .order_by(Task.remind_at, Task.id)
        .with_for_update(of=Task, skip_locked=True)
    )
    by_mailbox: dict[int, list[Row[Task, User]]] = {}
    for task, owner, mailbox_id in rows:
        mine = by_mailbox.setdefault(mailbox_id, [])
        if len(mine) < limit:
            mine.append(cast(Row[Task, User], (task, owner)))
    return by_mailbox


def counted_last_24h(session: Session, mailbox_id: int, now: datetime) -> int:
    """What the daily limit counts: sent in the last 24 hours, and in flight now (an
    email being handed over must not let another one past the limit)."""
    return counted_last_24h_of(session, [mailbox_id], now).get(mailbox_id, 0)


def _in_flight() -> ColumnElement[bool]:
    """A message handed over, or claimed to be: `handing`, or `prepared` while its run
    is leased (a reminder's has no run: claimed is all it can be). A step's message
    stays `prepared` when its run goes back to `pending` (given back by a worker that
    stopped or let its mailbox go, or waiting to be retried): it holds no slot then,
    and counted, it held back its own claim whenever the mailbox was at its limit, for
    as long as the limit's 24 hours took to free room. The runs in flight are the
    lease index's (`ix_step_runs_lease`): PostgreSQL reads them once, as a hashed
    subplan, not the whole table."""
    leased = (
        select(StepRun.id)
        .where(StepRun.id == Message.step_run_id, StepRun.status == SENDING)
        .exists()
    )
    prepared = and_(
        Message.status == MessageStatus.PREPARED,
        or_(Message.step_run_id.is_(None), leased),
    )
    return or_(Message.status == MessageStatus.HANDING, prepared)


def counted_last_24h_of(session: Session, mailbox_ids: list[int], now: datetime) -> dict[int, int]:
    """counted_last_24h of several mailboxes in one statement (absent: none)."""
    rows = session.execute(
        select(Message.mailbox_id, func.count())
        .where(
            Message.mailbox_id.in_(mailbox_ids),
            or_(Message.sent_at > now - timedelta(hours=24), _in_flight()),
        )
        .group_by(Message.mailbox_id)
    )
    return {mailbox_id: count for mailbox_id, count in rows}


def _settle_lost_reminders(
    session: Session, mailbox_ids: list[int], claimed_before: datetime
) -> None:
    """Reminders whose worker died before recording them stop holding the mailbox's daily
    room: one never handed over failed, one handed over is unknown (never sent again).

    Here rather than in recovery.py: a reminder has no step run lease, and the mailbox's
    unsent messages are the (mailbox, sent_at) index range this claim reads anyway."""
    lost = session.scalars(
        select(Message).where(
            Message.mailbox_id.in_(mailbox_ids),
            Message.sent_at.is_(None),
            Message.step_run_id.is_(None),
            Message.status.in_((MessageStatus.PREPARED, MessageStatus.HANDING)),
            Message.created_at < claimed_before,
        )
    )
    for message in lost:
        if message.status == MessageStatus.HANDING:
            message.status = MessageStatus.UNKNOWN
            message.smtp_reply = "the worker stopped while handing it over"
        else:
            message.status = MessageStatus.FAILED
            message.smtp_reply = "not sent: the worker stopped before handing it over"


class _Waits:
    """Why each planned mailbox's other due runs wait, written once for the whole
    transaction (`mark`): one statement per reason, not one per mailbox — a thousand
    mailboxes at their limits each have runs waiting behind the granted ones at every
    claim (bench/latency.py)."""

    def __init__(self) -> None:
        self.mailboxes: dict[StepWaitReason, list[int]] = {}

    def add(self, reason: StepWaitReason, mailbox_id: int) -> None:
        self.mailboxes.setdefault(reason, []).append(mailbox_id)

    def mark(self, session: Session, due_by: datetime) -> None:
        """The mailboxes' email runs due by `due_by` (the claim's horizon) still pending
        wait, each for its mailbox's reason, writing only the rows whose reason changes.
        Called once the granted runs are leased (or failed): they are no longer pending,
        so no list of their ids is sent (with a thousand mailboxes it was thousands of
        parameters). Runs taken ahead of their due time count: marked, a mailbox whose
        throttle grants nothing before the horizon is not claimed again for nothing
        (`mailboxes_with_due_email`)."""
        for reason, mailbox_ids in self.mailboxes.items():
            session.execute(
                update(StepRun)
                .where(
                    StepRun.mailbox_id.in_(mailbox_ids),
                    StepRun.status == PENDING,
                    StepRun.due_at <= due_by,
                    _sends_email(),
                    or_(StepRun.wait_reason.is_(None), StepRun.wait_reason != reason),
                )
                .values(wait_reason=reason)
                .execution_options(synchronize_session=False)
            )


def _due_runs(
    session: Session, limits: dict[int, int], due_by: datetime
) -> dict[int, list[tuple[StepRun, Enrollment]]]:
    """The first `limits[mailbox]` email runs due by `due_by` of each of these mailboxes,
    in due order, with their enrollments, locked: one statement for all of them.

    Each mailbox's runs are its own index range, cut at its limit (a mailbox may have
    thousands due: only what its throttle can grant is read). The outer query repeats
    the conditions, so that on PostgreSQL a run changed by another transaction while
    this one waited for its row lock (an unenroll cancelling it) is re-checked and
    left out, as a plain locking read does."""
    found: dict[int, list[tuple[StepRun, Enrollment]]] = {}
    ids = sorted(limits)
    for start in range(0, len(ids), _READ_AT_ONCE):
        these = ids[start : start + _READ_AT_ONCE]
        params: dict[str, Any] = {"due_by": due_by}
        for i, mailbox_id in enumerate(these):
            params[f"m{i}"], params[f"k{i}"] = mailbox_id, limits[mailbox_id]
        for run, enrollment in session.execute(_due_runs_statement(len(these)), params):
            found.setdefault(run.mailbox_id, []).append((run, enrollment))
    return found


# The most mailboxes one read takes: the worker claims fifty per transaction; SQLite
# allows 500 terms in a compound query, and each number is a statement kept below.
_READ_AT_ONCE = 50


def _due_by_horizon(*, opaque: bool = False) -> list[ColumnElement[bool]]:
    """Pending email runs due by the claim's horizon (`due_by`): taken ahead, their
    slots are no sooner than their due times (`_plan_mailbox`).

    `opaque`: the same conditions, as a check of rows already found by key, that no
    index can serve (`checked_after_lookup`). Given the bare columns, PostgreSQL's
    planner could read the whole range of due runs through the due index and match it
    to the keys, which it did whenever its statistics had not yet seen the runs fall
    due (a bulk enrollment due now, the first minute of bench/latency.py): every claim
    transaction then read every due run of every mailbox, tens of thousands, where it
    needed a hundred (bench/latency.py, docs/benchmarks.md)."""
    due = [StepRun.status == PENDING, StepRun.due_at <= bindparam("due_by"), _sends_email()]
    return [checked_after_lookup(and_(*due))] if opaque else due


@lru_cache(maxsize=64)
def _due_runs_statement(mailboxes: int) -> Select[StepRun, Enrollment]:
    """_due_runs' statement for this many mailboxes, built once: building it costs more
    than running it. SQLite takes a LIMIT inside a compound query only in a subquery."""
    firsts = [
        select(StepRun.id)
        .where(StepRun.mailbox_id == bindparam(f"m{i}"), *_due_by_horizon())
        .order_by(StepRun.due_at, StepRun.id)
        .limit(bindparam(f"k{i}", type_=Integer))
        .subquery()
        for i in range(mailboxes)
    ]
    each = [select(first.c.id) for first in firsts]
    return (
        select(StepRun, Enrollment)
        .join(Enrollment, StepRun.enrollment_id == Enrollment.id)
        .where(
            StepRun.id.in_(union_all(*each) if len(each) > 1 else each[0]),
            *_due_by_horizon(opaque=True),
        )
        .order_by(StepRun.mailbox_id, StepRun.due_at, StepRun.id)
        .with_for_update(of=StepRun)
    )


def claim_emails(
    ctx: Context,
    mailbox_ids: int | Sequence[int],
    worker_id: str,
    *,
    batch_size: int,
    horizon: timedelta,
    lease: timedelta,
    choice: Choice | None = None,
) -> list[ClaimedEmail]:
    """Claims these mailboxes' emails due by now + horizon that fit their throttles
    before it, in one transaction. `choice`: how the worker chose these mailboxes
    (delivery/affinity.py); one that another worker noted as its own since is left out.

    An email that falls due within the horizon is claimed ahead, with a slot no sooner
    than its due time: the worker opens the mailbox's session and has the message
    composed before the slot comes, instead of starting both once it is due (2,000
    mailboxes whose first emails fall due within one spacing, each on a new SMTP
    connection, were late by what that cost: docs/engine.md, "Claimed ahead").

    Many mailboxes share one transaction, and their emails one composition (contacts,
    senders, threads and links loaded once): a thousand mailboxes at their per-minute
    limits each get one or two slots a claim, and a transaction each cost more than the
    emails (bench/latency.py). A mailbox's due runs are read only as far as its throttle
    can grant slots (plus one, to know whether others wait).
    """
    ids = [mailbox_ids] if isinstance(mailbox_ids, int) else sorted(set(mailbox_ids))
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        mailboxes = _claimable(session, ids)
        if choice is not None:
            mailboxes = [m for m in mailboxes if not choice.taken_meanwhile(m, worker_id, now)]
        if not mailboxes:
            return []
        ids = [mailbox.id for mailbox in mailboxes]
        reminders = _due_reminders(session, ids, now, batch_size)
        digests = _due_digests(session, ids, now, batch_size)
        _settle_lost_reminders(session, ids, now - lease)
        counted = counted_last_24h_of(session, ids, now)
        rooms = {
            mailbox.id: mailbox.daily_limit - counted.get(mailbox.id, 0) for mailbox in mailboxes
        }
        wanted = {
            mailbox.id: _wanted(mailbox, rooms[mailbox.id], now, horizon, batch_size)
            for mailbox in mailboxes
            if mailbox.connected
        }
        # one more each: does anything wait behind what may be granted?
        due_by = now + horizon
        first_reads = _due_runs(session, {m: n + 1 for m, n in wanted.items()}, due_by)
        waits = _Waits()
        plans: list[tuple[Mailbox, list[tuple[StepRun, Enrollment]], list[datetime]]] = []
        next_free: dict[int, datetime | None] = {}
        for mailbox in mailboxes:
            mine, theirs = reminders.get(mailbox.id, []), digests.get(mailbox.id, [])
            granted, slots, next_free[mailbox.id] = _plan_mailbox(
                session,
                _Planning(mailbox, rooms[mailbox.id], wanted.get(mailbox.id, 0), now, horizon),
                first_reads.get(mailbox.id, []),
                batch_size,
                mine,
                theirs,
                waits,
            )
            plans.append((mailbox, granted, slots))
        claimed = _prepare(session, ctx, plans, worker_id, lease, now)
        waits.mark(session, due_by)  # after: the granted runs are leased, no longer pending
        for mailbox, granted, slots in plans:  # reminders, then digests, after the steps
            mine = reminders.get(mailbox.id, [])
            reminder_slots = slots[len(granted) :]
            claimed += _prepare_reminders(session, mailbox, mine, reminder_slots, now)
            digest_slots = reminder_slots[len(mine) :]
            theirs = digests.get(mailbox.id, [])
            claimed += _prepare_digests(session, ctx, mailbox, theirs, digest_slots, now)
        # the mailboxes' rows written last: on PostgreSQL a hand-over of their emails
        # (which locks them) waits only for the rest of this commit, not the composing
        for mailbox, _, slots in plans:
            if mailbox.next_send_at != next_free[mailbox.id]:
                mailbox.next_send_at = next_free[mailbox.id]
            if slots:  # kept by this worker for a while (delivery/affinity.py)
                mailbox.claimed_by, mailbox.claimed_at = worker_id, now
        return claimed


# The class of the advisory locks that say "this mailbox is being claimed" (their second
# key is the mailbox's id): any fixed number no other lock of the database uses.
CLAIM_LOCK_CLASS = 0x0C1A


# Over the ids given, not the table: a filter of the table's rows could be run on every
# row before the ids' (the planner orders a scan's conditions by their cost).
_HOLD_FOR_CLAIM = text(
    "SELECT id FROM unnest(CAST(:ids AS integer[])) AS id"
    " WHERE pg_try_advisory_xact_lock(:kind, id)"
)


def _claimable(session: Session, ids: list[int]) -> list[Mailbox]:
    """These mailboxes, less those another transaction is claiming now, each held until
    this one ends: two claims never plan one mailbox's slots at once.

    On PostgreSQL the hold is a transaction-level advisory lock, not the mailbox's row:
    a hand-over of the mailbox's emails locks that row (handover.py), and held by the
    claim it waited for all the claim's composing, so a worker whose claims run beside
    its hand-overs (engine/worker.py) gained nothing from it. The rows are read in a
    statement after the locks are taken: one that took them would read a snapshot from
    before, and miss the slots a claim that committed meanwhile granted. On SQLite the
    claim's transaction holds the one write lock (BEGIN IMMEDIATE): nothing else claims."""
    if session.get_bind().dialect.name == "postgresql":
        held = session.scalars(_HOLD_FOR_CLAIM, {"ids": ids, "kind": CLAIM_LOCK_CLASS}).all()
        if not held:
            return []
        ids = list(held)
    rows = select(Mailbox).where(Mailbox.id.in_(ids)).order_by(Mailbox.id)
    return list(session.scalars(rows))


@dataclass(frozen=True)
class _Planning:
    """What planning a mailbox's claim starts from: the mailbox (held by this claim), its daily
    room, how many runs its throttle can grant before the horizon, and the instants."""

    mailbox: Mailbox
    room: int
    wanted: int
    now: datetime
    horizon: timedelta


def _wanted(mailbox: Mailbox, room: int, now: datetime, horizon: timedelta, batch_size: int) -> int:
    """How many of its due runs a mailbox's throttle can grant before the horizon."""
    fits = most_slots(
        next_free=mailbox.next_send_at,
        now=now,
        horizon=now + horizon,
        per_minute_limit=mailbox.per_minute_limit,
        daily_room=room,
    )
    return min(batch_size, fits)


def _plan_mailbox(
    session: Session,
    planning: _Planning,
    first_read: list[tuple[StepRun, Enrollment]],
    batch_size: int,
    reminders: list[Row[Task, User]],
    digests: list[Row[TaskDigest, User]],
    waits: _Waits,
) -> tuple[list[tuple[StepRun, Enrollment]], list[datetime], datetime | None]:
    """One mailbox's granted runs and the slots of its runs, reminders and digests, in
    that order, and its next free slot past them (the caller writes it, last). Held runs
    record why they wait (`waits`). `first_read`: its first `wanted + 1` due runs
    (_due_runs); a follow-up moved out of its send window makes room, and the runs
    behind are read again."""
    mailbox, room, wanted, now = planning.mailbox, planning.room, planning.wanted, planning.now
    if not mailbox.connected:  # its reminders wait too, unclaimed
        waits.add(StepWaitReason.MAILBOX_DISCONNECTED, mailbox.id)
        return [], [], mailbox.next_send_at
    sendable: list[tuple[StepRun, Enrollment]] = []
    due, read = first_read, len(first_read)
    while True:
        need = wanted - len(sendable)
        behind = len(due) > need
        moved = False
        for run, enrollment in due[:need]:
            at = max(now, run.due_at)  # claimed ahead: when it falls due
            allowed_from = _follow_up_allowed_from(run, enrollment, at)
            if allowed_from > at:  # no longer due: the next read sees the ones behind
                run.due_at, run.wait_reason = allowed_from, StepWaitReason.SEND_WINDOW
                moved = True
            else:
                sendable.append((run, enrollment))
        if not (moved and behind and len(sendable) < wanted and read < batch_size):
            break
        # the granted so far come first again (still due): one more than wanted after them
        taken = {run.id for run, _ in sendable}
        due_by = now + planning.horizon
        again = _due_runs(session, {mailbox.id: wanted + 1}, due_by).get(mailbox.id, [])
        due = [(run, enrollment) for run, enrollment in again if run.id not in taken]
        read += len(due)
    if not sendable and not reminders and not digests and not behind:
        return [], [], mailbox.next_send_at
    plan = plan_slots(
        next_free=mailbox.next_send_at,
        now=now,
        horizon=now + planning.horizon,
        per_minute_limit=mailbox.per_minute_limit,
        bulk_first=[run.bulk_first for run, _ in sendable]
        + [False] * (len(reminders) + len(digests)),
        daily_room=room,
        due=[run.due_at for run, _ in sendable],  # reminders and digests: due now
    )
    granted = sendable[: len(plan.slots)]
    # the runs behind wait for the mailbox's limits only when those, not the claim's
    # batch, cut the read short: held by the batch, they are the next claim's, and a
    # reason written would be false (and a row written for nothing each: bench/engine.py)
    if (behind and wanted < batch_size) or len(granted) < len(sendable):
        reason = StepWaitReason.DAILY_LIMIT if room <= len(granted) else StepWaitReason.RATE_LIMIT
        waits.add(reason, mailbox.id)
    return granted, plan.slots, plan.next_free


def _prepare_reminders(
    session: Session,
    mailbox: Mailbox,
    reminders: list[Row[Task, User]],
    slots: list[datetime],
    now: datetime,
) -> list[ClaimedEmail]:
    """The granted reminders' messages, stored, their tasks marked reminded: sent at most
    once (one lost to a crash is not worth a duplicate)."""
    claimed = []
    for (task, owner), slot in zip(reminders, slots, strict=False):
        task.reminded_at = now
        message = compose_reminder(task, owner, mailbox, now)
        session.add(message)
        session.flush()
        claimed.append(
            ClaimedEmail(
                None,
                cast(int, task.enrollment_id),  # found through its enrollment: never None
                message.id,
                mailbox.id,
                slot,
                mailbox.from_email,
                message.to_email,
                cast(str, message.raw).encode("utf-8"),  # compose_reminder wrote it
                spacing(mailbox.per_minute_limit, bulk_first=False),
                False,
                None,
                0,
                0,
                task_id=task.id,
            )
        )
    return claimed


def _prepare_digests(
    session: Session,
    ctx: Context,
    mailbox: Mailbox,
    digests: list[Row[TaskDigest, User]],
    slots: list[datetime],
    now: datetime,
) -> list[ClaimedEmail]:
    """The granted digests' messages, stored, the digests marked claimed: sent at most once.
    A day whose tasks were all done meanwhile sends nothing (the digest says why)."""
    claimed = []
    for (digest, owner), slot in zip(digests, slots, strict=False):
        zone = task_reminders.zone_of(ctx, owner)
        _, end = day_bounds(digest.local_date, zone)
        where = task_reminders.open_tasks_until(owner.id, end)
        total = session.scalar(select(func.count()).select_from(Task).where(*where)) or 0
        digest.task_count, digest.claimed_at = total, now
        if not total:
            digest.status = DigestStatus.NO_TASKS
            continue
        name = func.trim(
            func.coalesce(Contact.firstname, "") + " " + func.coalesce(Contact.lastname, "")
        )
        lines = [
            DigestLine(title, f"{who} <{email}>" if who else email, due_at)
            for title, who, email, due_at in session.execute(
                select(Task.title, name, Contact.email, Task.due_at)
                .outerjoin(Contact, Contact.id == Task.contact_id)
                .where(*where)
                .order_by(Task.due_at, Task.id)
                .limit(DIGEST_MAX_LINES)
            )
        ]
        queue_url = ctx.settings.public_url.rstrip("/") + "/tasks"
        message = compose_digest(
            owner, mailbox, digest.local_date, zone, lines, total, queue_url, now
        )
        session.add(message)
        session.flush()
        digest.status, digest.message_id = DigestStatus.CLAIMED, message.id
        claimed.append(
            ClaimedEmail(
                None,
                None,
                message.id,
                mailbox.id,
                slot,
                mailbox.from_email,
                message.to_email,
                cast(str, message.raw).encode("utf-8"),  # compose_digest wrote it
                spacing(mailbox.per_minute_limit, bulk_first=False),
                False,
                None,
                0,
                0,
                digest_id=digest.id,
            )
        )
    return claimed


# A granted run, its enrollment, its message's columns (with "id" once stored: a retry's
# message has it already), its send slot and its mailbox.
_Composed = tuple[StepRun, Enrollment, dict[str, Any], datetime, Mailbox]


def _store(session: Session, composed: list[_Composed], worker_id: str, lease: timedelta) -> None:
    """The batch's new messages and its runs' leases, each in one statement for all of
    them (store/bound_rows.py).

    Statements compiled once and run on the driver's cursor (store/prepared.py), not
    the unit of work nor the ORM's bulk statements: flushing hundreds of new objects one
    by one cost as much as composing them, and the ORM's bulk paths an eighth of the
    worker's time (bench/engine.py). One statement rather than one per row: on
    PostgreSQL each row of an `executemany` is an execution of its own on the server.
    Every column is given, as when these rows were ORM objects read back attribute by
    attribute.
    """
    session.flush()  # what the session changed goes first: these run beside it
    connection = session.connection()
    dialect = connection.dialect
    new = [message for _, _, message, _, _ in composed if "id" not in message]
    if new:
        rows = _NEW_MESSAGES.bind([[m.get(c) for c in _MESSAGE_COLUMNS] for m in new], dialect)
        ids = dict(_INSERT_MESSAGES.run(connection, rows).fetchall())
        for message in new:
            message["id"] = ids[message["step_run_id"]]
    leases = [(run.id, slot + lease) for run, _, _, slot, _ in composed]
    _LEASE_RUNS.run(connection, {**_LEASES.bind(leases, dialect), "worker": worker_id})


_MESSAGE_COLUMNS = [c.key for c in Message.__table__.columns if c.key != "id"]
_NEW_MESSAGES = BoundRows.of("new_messages", Message, *_MESSAGE_COLUMNS)
_LEASES = BoundRows("leases", pk=Integer(), until=UTCDateTime())


def _insert_messages(dialect: str) -> Executable:
    """Each new message is a step's (the map back to the rows is by step run)."""
    rows = _NEW_MESSAGES.table(dialect)
    return (
        insert(Message)
        .from_select(_MESSAGE_COLUMNS, select(*(rows.c[c] for c in _MESSAGE_COLUMNS)))
        .returning(Message.step_run_id, Message.id)
    )


def _lease_runs(dialect: str) -> Executable:
    rows = _LEASES.table(dialect)
    return (
        update(StepRun)
        .where(StepRun.id == rows.c.pk)
        .values(status=SENDING, locked_by=bindparam("worker"), locked_until=rows.c.until,
                wait_reason=None)
        .execution_options(synchronize_session=False)
    )  # fmt: skip


_INSERT_MESSAGES = Prepared(build=_insert_messages)
_LEASE_RUNS = Prepared(build=_lease_runs)


def _follow_up_allowed_from(run: StepRun, enrollment: Enrollment, now: datetime) -> datetime:
    """A follow-up held back (throttle, retry, pause) still obeys its days and window."""
    if run.step_position == enrollment.start_step:
        return now
    settings = settings_of(enrollment)
    if settings.send_window is None and settings.follow_up_days == "every_day":
        return now
    tz = parse_timezone(enrollment.timezone)
    return max(
        now, schedule.normalize_follow_up(now.astimezone(tz).replace(tzinfo=None), tz, settings)
    )


def _prepare(
    session: Session,
    ctx: Context,
    plans: list[tuple[Mailbox, list[tuple[StepRun, Enrollment]], list[datetime]]],
    worker_id: str,
    lease: timedelta,
    now: datetime,
) -> list[ClaimedEmail]:
    """Composes and stores the granted runs of every mailbox: what each composition
    reads (contacts, senders, threads, links) is loaded once for all of them."""
    granted = [(run, enrollment) for _, runs, _ in plans for run, enrollment in runs]
    if not granted:
        return []
    contact_ids = {e.contact_id for _, e in granted}
    user_ids = {e.enrolled_by_id for _, e in granted}
    contacts = {
        c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))
    }
    users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(user_ids)))}
    sources = MessageSources.load(session, granted, ctx)
    composed: list[_Composed] = []
    for mailbox, runs, slots in plans:
        for (run, enrollment), slot in zip(runs, slots, strict=False):
            stored = sources.existing.get(run.id)  # a retry sends the very same message
            try:
                message = (
                    {"id": stored.id, "to_email": stored.to_email, "raw": stored.raw}
                    if stored is not None
                    else composed_columns(
                        sources,
                        run,
                        enrollment,
                        contacts[enrollment.contact_id],
                        users[enrollment.enrolled_by_id],
                        mailbox,
                        now,
                    )
                )
            except CadenzaError as exc:
                reason = f"could not render ({exc.code}): {exc.message}"
                fail_step(session, ctx, run, enrollment, reason)
                continue
            composed.append((run, enrollment, message, slot, mailbox))
    _store(session, composed, worker_id, lease)
    return [
        ClaimedEmail(
            run.id,
            run.enrollment_id,
            message["id"],
            mailbox.id,
            slot,
            mailbox.from_email,
            message["to_email"],
            _raw(message),
            spacing(mailbox.per_minute_limit, bulk_first=False),
            run.step_position >= len(enrollment.steps_snapshot),
            enrollment.contact_id,
            enrollment.sequence_id,
            run.step_position,
        )
        for run, enrollment, message, slot, mailbox in composed
    ]


def _raw(message: dict[str, Any]) -> bytes:
    """The bytes to send: compose() stores them with every message it makes."""
    assert message["raw"] is not None, f"message {message['id']} has no stored bytes"
    return cast(str, message["raw"]).encode("utf-8")
