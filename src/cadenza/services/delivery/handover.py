"""Handing a claimed email over, and recording what came of it: "at most once, ever".

A step run moves pending → sending (claimed under a lease, its message composed and
stored: claims.py) → handing (committed *before* a byte goes to the server) → sent /
failed / unknown. Whatever dies where:

- before `handing` is committed: the lease expires, the run is pending again and the
  same stored message (same Message-ID) is sent later by any worker (recovery.py);
- after it: the outcome is unknown, the run is marked `unknown` for a person to
  review and is never sent again automatically.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from enum import StrEnum
from typing import cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Exists,
    Integer,
    Text,
    and_,
    bindparam,
    case,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from cadenza.domain.delivery_outcome import DeliveryOutcome, DeliveryResult
from cadenza.domain.enums import (
    EnrollmentState,
    MessageStatus,
    StepRunStatus,
    StepWaitReason,
)
from cadenza.services.context import Context
from cadenza.services.counters import deltas as counters
from cadenza.services.delivery.claims import PENDING, SENDING, ClaimedEmail
from cadenza.services.delivery.sent_steps import SentStep, record_step_sent, record_steps_sent
from cadenza.services.enrollment.progress import fail_step, mark_unknown
from cadenza.services.events_out.mailbox_state import mark_disconnected
from cadenza.store.bound_rows import BoundRows, checked_after_lookup
from cadenza.store.models import DeliveryAttempt, Enrollment, Mailbox, Message, StepRun
from cadenza.store.prepared import Prepared
from cadenza.store.read_once import read_once
from cadenza.store.types import UTCDateTime

MAX_ATTEMPTS = 5
# Permanent refusals in a row, each of another recipient, that blame the mailbox rather
# than the recipients (a misconfigured relay): it is paused instead of failing them all.
REFUSALS_IN_A_ROW = 3
REFUSALS_WITHIN = timedelta(days=1)
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=2)


class HandOver(StrEnum):
    GO = "go"
    SKIP = "skip"  # paused, unenrolled, disconnected, or no longer ours
    WAIT = "wait"  # the mailbox's previous email left too recently (it was late)


# The hand-over's statements, built and compiled once and run on the driver's cursor
# (store/prepared.py): this is the hot path of every send. Those of the common path
# take all the emails of one commit at once (store/bound_rows.py).
_HANDING = BoundRows("handing", pk=Integer(), enrollment_id=Integer())
_SLOTS = BoundRows("slots", mailbox_id=Integer(), earliest=UTCDateTime())
# Each message a commit marks: leaving (1, to `handing`) or delivered (0, to `sent`).
_MARKS = BoundRows("marks", pk=Integer(), leaving=Integer(), reply=Text())
_TRIES = BoundRows.of("tries", DeliveryAttempt, "message_id", "attempt", "outcome", "code", "reply")


def _owned_by_worker(*conditions: ColumnElement[bool]) -> Exists:
    """The message's step run is still this worker's: its lease did not pass to another.
    Checked on the message's run, found by its key: the leases' index would lead to
    every run in flight (`checked_after_lookup`)."""
    owned = and_(StepRun.locked_by == bindparam("worker"), *conditions)
    return (
        select(StepRun.id)
        .where(StepRun.id == Message.step_run_id, checked_after_lookup(owned))
        .exists()
    )


def _states(dialect: str) -> Executable:
    """Each enrollment's state and its mailbox's, locked on PostgreSQL in mailbox order:
    an unenroll or pause either commits before the hand-over or waits for it, and two
    workers handing over emails of the same mailboxes never wait on each other in a
    cycle (the slots' update below then finds the mailboxes' rows already locked)."""
    rows = _HANDING.table(dialect)
    query = (
        select(Enrollment.id, Enrollment.state, Mailbox.connected)
        .join(Mailbox, Mailbox.id == Enrollment.mailbox_id)
        .where(Enrollment.id.in_(select(rows.c.enrollment_id)))
        .order_by(Mailbox.id, Enrollment.id)
    )
    if dialect == "postgresql":
        return query.with_for_update(of=[Enrollment, Mailbox], key_share=True)
    return query


def _marking(dialect: str) -> Executable:
    """The commit's one write of its messages: the emails leaving now marked `handing`
    where they are still `prepared` and their runs still leased to this worker, the
    ones the server accepted marked `sent` where they are still `handing` and their runs
    still this worker's. One statement rather than one of each: it is the widest table
    a commit writes, with the most indexes to open, and on PostgreSQL a statement's
    fixed cost, not its rows, is most of what the server spends on it (bench/engine.py,
    docs/benchmarks.md). Returns each marked message's key and new status."""
    rows = _MARKS.table(dialect)
    leaving = rows.c.leaving == 1
    delivered = rows.c.leaving == 0
    now = bindparam("now", type_=UTCDateTime())
    return (
        update(Message)
        .where(
            Message.id == rows.c.pk,
            or_(
                and_(
                    leaving,
                    checked_after_lookup(Message.status == MessageStatus.PREPARED),
                    _owned_by_worker(StepRun.status == SENDING),
                ),
                and_(
                    delivered,
                    checked_after_lookup(Message.status == MessageStatus.HANDING),
                    _owned_by_worker(),
                ),
            ),
        )
        .values(
            status=case(
                (leaving, literal(MessageStatus.HANDING, Message.status.type)),
                else_=literal(MessageStatus.SENT, Message.status.type),
            ),
            handed_at=case((leaving, now), else_=Message.handed_at),
            sent_at=case((leaving, Message.sent_at), else_=now),
            smtp_reply=case((leaving, Message.smtp_reply), else_=rows.c.reply),
        )
        .returning(Message.id, Message.status)
        .execution_options(synchronize_session=False)
    )


def _mailbox_slots(dialect: str) -> Executable:
    """Takes each mailbox's hand-over mark where its previous email left at least a
    spacing ago (`earliest`): actual sends stay spaced even when one was late."""
    rows = _SLOTS.table(dialect)
    return (
        update(Mailbox)
        .where(
            Mailbox.id == rows.c.mailbox_id,
            or_(Mailbox.last_handed_at.is_(None), Mailbox.last_handed_at <= rows.c.earliest),
        )
        .values(last_handed_at=bindparam("now"))
        .returning(Mailbox.id)
        .execution_options(synchronize_session=False)
    )


_STATES = Prepared(build=_states)
_MARK_MESSAGES = Prepared(build=_marking)
_MAILBOX_SLOTS = Prepared(build=_mailbox_slots)
# A task digest belongs to no enrollment: only its mailbox's state counts.
_CONNECTED = Prepared(select(Mailbox.connected).where(Mailbox.id == bindparam("mailbox_id")))
# A task reminder has no step run: the message row alone says whose it is.
_HAND_OVER_REMINDER = Prepared(
    update(Message)
    .where(
        Message.id == bindparam("pk"),
        Message.status == MessageStatus.PREPARED,
        Message.step_run_id.is_(None),
    )
    .values(status=MessageStatus.HANDING, handed_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)
_DROP_REMINDER = Prepared(
    update(Message)
    .where(Message.id == bindparam("pk"), Message.status == MessageStatus.PREPARED)
    .values(status=MessageStatus.FAILED, smtp_reply=bindparam("reply"))
    .execution_options(synchronize_session=False)
)
_TAKE_BACK = Prepared(
    update(Message)
    .where(Message.id == bindparam("pk"))
    .values(status=MessageStatus.PREPARED, handed_at=None)
    .execution_options(synchronize_session=False)
)
_ATTEMPTS = Prepared(
    build=lambda dialect: _TRIES.inserted(
        DeliveryAttempt, dialect, at=bindparam("now", type_=UTCDateTime())
    )
)


Finished = Sequence[tuple[ClaimedEmail, DeliveryResult]]


def hand_over(
    ctx: Context, claim: ClaimedEmail, worker_id: str, finished: Finished = ()
) -> HandOver:
    """Records the finished emails' outcomes and marks this one as leaving: one commit."""
    return hand_over_many(ctx, [claim], worker_id, finished)[0]


def hand_over_many(
    ctx: Context, claims: Sequence[ClaimedEmail], worker_id: str, finished: Finished = ()
) -> list[HandOver]:
    """Records the finished emails' outcomes and marks these as leaving: one commit for
    all of them, each claim's answer in the order given.

    The worker passes the next email of each mailbox that is free to send it at once
    (nothing of that mailbox in flight), so however many are marked in one commit, each
    mailbox still has at most one `handing` email: a crash after the commit leaves at
    most one `unknown` per mailbox. One commit per round rather than per email is what
    lets PostgreSQL's WAL flush (the price of "maybe sent" surviving the database
    server's crash) be paid once for many emails, and one statement per kind of row
    for all of them (store/bound_rows.py) is what keeps the database's work per email
    small.

    A Core connection rather than an ORM session: this runs for every email, and the
    session's bookkeeping cost more than the statements. The rare paths open a session
    on the same connection and transaction.
    """
    if len({claim.mailbox_id for claim in claims}) != len(claims):
        raise ValueError("one email per mailbox at a time: at most one may be unknown")
    with _commit(ctx) as connection:
        answers = _record_and_hand_over(connection, ctx, claims, finished, worker_id)
    return [answers[claim.mailbox_id] for claim in claims]


def record_outcomes(ctx: Context, finished: Finished, worker_id: str) -> None:
    if finished:
        with _commit(ctx) as connection:
            _record_and_hand_over(connection, ctx, (), finished, worker_id)


@contextmanager
def _commit(ctx: Context) -> Iterator[Connection]:
    """One hand-over transaction: on the engine for keyed statements (store/db.py), the
    listeners read once and the counters' rows written once, at its end."""
    engine = ctx.db.keyed_engine
    with engine.begin() as connection, read_once(connection), counters.batched(connection):
        yield connection


def _record_and_hand_over(
    connection: Connection,
    ctx: Context,
    claims: Sequence[ClaimedEmail],
    finished: Finished,
    worker_id: str,
) -> dict[int, HandOver]:
    """One commit's work, in an order that matters: each mailbox's answer.

    1. The outcomes the common statements cannot record (refusals, retries, unknowns,
       reminders) come first: a refusal of the mailbox's login disconnects it, and its
       next email, in this same commit, must then see it disconnected.
    2. The last check before the messages leave (`_going`), under the enrollments' and
       mailboxes' locks.
    3. One statement marks the messages: the leaving ones `handing`, the accepted ones
       `sent` (`_mark_messages`). `now` is the commit's one instant, shared by both.
    4. The mailboxes' hand-over marks, then the accepted sends' steps recorded, all at
       once; an accepted send the mark did not find (recovered meanwhile, or taken
       over) takes the slow path, which knows what to make of it.
    """
    now = ctx.clock.now()
    accepted = [
        (c, r) for c, r in finished if not c.is_reminder and r.outcome is DeliveryOutcome.SENT
    ]
    common = {claim.message_pk for claim, _ in accepted}
    for claim, result in finished:
        if claim.message_pk not in common:
            _record(connection, ctx, claim, result, worker_id)
    answers, going = _going(connection, claims, worker_id)
    sent, handed = _mark_messages(connection, accepted, going, worker_id, now)
    for claim in going:
        if claim.message_pk not in handed:
            answers[claim.mailbox_id] = HandOver.SKIP  # our lease passed to another worker
    slots = [c for c in going if c.message_pk in handed]
    answers |= _take_slots(connection, slots, now)
    _record_sent(connection, [(c, r) for c, r in accepted if c.message_pk in sent], now)
    for claim, result in accepted:
        if claim.message_pk not in sent:
            _record(connection, ctx, claim, result, worker_id)
    return answers


def _going(
    connection: Connection, claims: Sequence[ClaimedEmail], worker_id: str
) -> tuple[dict[int, HandOver], list[ClaimedEmail]]:
    """The last check before the messages leave: the claims whose enrollment is live and
    whose mailbox is connected, and the others' answers (their runs released).

    Locks the enrollments (`_states`), so an unenroll or pause either happens before
    (and the message never leaves) or after (and it is recorded as sent, then
    unenrolled)."""
    answers: dict[int, HandOver] = {}
    steps = [c for c in claims if c.enrollment_id is not None]
    states: dict[int, tuple[str, bool]] = {}
    if steps:
        rows = _HANDING.bind([(c.message_pk, c.enrollment_id) for c in steps], connection.dialect)
        states = {e: (state, connected) for e, state, connected in _STATES.run(
            connection, rows).fetchall()}  # fmt: skip
    going: list[ClaimedEmail] = []
    for claim in sorted(claims, key=lambda c: c.mailbox_id):
        if claim.enrollment_id is None:  # a task digest
            state = None
            (connected,) = _CONNECTED.run(connection, {"mailbox_id": claim.mailbox_id}).fetchone()
        else:
            state, connected = states[claim.enrollment_id]
        # a task's reminder goes while its enrollment is live (an ended one closed the task)
        live = (
            state == EnrollmentState.ACTIVE
            or (claim.is_reminder and state == EnrollmentState.PAUSED)
            or claim.enrollment_id is None
        )
        if live and connected:
            going.append(claim)
        else:
            answers[claim.mailbox_id] = _not_going(connection, claim, state, worker_id)
    return answers, going


def _take_slots(
    connection: Connection, slots: list[ClaimedEmail], now: datetime
) -> dict[int, HandOver]:
    """Takes each mailbox's hand-over mark, so actual sends stay spaced even when one was
    late: GO, or WAIT (the message taken back) where the previous email left too
    recently."""
    answers: dict[int, HandOver] = {}
    if not slots:
        return answers
    params = {
        **_SLOTS.bind([(c.mailbox_id, now - c.spacing) for c in slots], connection.dialect),
        "now": now,
    }
    marked = {row[0] for row in _MAILBOX_SLOTS.run(connection, params).fetchall()}
    for claim in slots:
        if claim.mailbox_id in marked:
            answers[claim.mailbox_id] = HandOver.GO
        else:  # rare: the previous email left late
            _TAKE_BACK.run(connection, {"pk": claim.message_pk})
            answers[claim.mailbox_id] = HandOver.WAIT
    return answers


def _mark_messages(
    connection: Connection,
    accepted: list[tuple[ClaimedEmail, DeliveryResult]],
    going: list[ClaimedEmail],
    worker_id: str,
    now: datetime,
) -> tuple[set[int], set[int]]:
    """Marks the accepted messages `sent` and the leaving ones `handing`, each where its
    run is still this worker's: the message keys marked sent, and those marked handing.
    A task's reminder has no run: its own statement."""
    sent: set[int] = set()
    handed: set[int] = set()
    marks: list[tuple[int, int, str | None]] = [
        (c.message_pk, 0, r.reply_line) for c, r in accepted
    ]
    marks += [(c.message_pk, 1, None) for c in going if not c.is_reminder]
    if marks:
        params = {**_MARKS.bind(marks, connection.dialect), "worker": worker_id, "now": now}
        for pk, status in _MARK_MESSAGES.run(connection, params).fetchall():
            (handed if status == MessageStatus.HANDING else sent).add(pk)
    for claim in going:
        if claim.is_reminder:
            params = {"pk": claim.message_pk, "now": now}
            if _HAND_OVER_REMINDER.run(connection, params).rowcount == 1:
                handed.add(claim.message_pk)
    return sent, handed


def _not_going(
    connection: Connection, claim: ClaimedEmail, state: str | None, worker_id: str
) -> HandOver:
    """Paused, unenrolled, or its mailbox disconnected: a step's run is released to what
    it waits for, a reminder is dropped (at most once: not retried later)."""
    if claim.is_reminder:
        why = (
            "not sent: the mailbox was disconnected"
            if claim.enrollment_id is None
            else "not sent: the mailbox was disconnected or the enrollment ended"
        )
        _DROP_REMINDER.run(connection, {"pk": claim.message_pk, "reply": why})
        return HandOver.SKIP
    with Session(bind=connection) as session:
        run = session.get_one(StepRun, claim.run_id, with_for_update=True)
        if run.status == SENDING and run.locked_by == worker_id:
            _release(run, cast(EnrollmentState, state))  # a step's: it has an enrollment
        session.flush()
    return HandOver.SKIP


def _release(run: StepRun, enrollment_state: EnrollmentState) -> None:
    run.locked_by = run.locked_until = None
    if enrollment_state == EnrollmentState.PAUSED:
        run.status = StepRunStatus.PAUSED
    elif enrollment_state == EnrollmentState.ACTIVE:  # its mailbox was disconnected
        run.status, run.wait_reason = PENDING, StepWaitReason.MAILBOX_DISCONNECTED
    else:
        run.status = StepRunStatus.CANCELLED


def _record(
    connection: Connection,
    ctx: Context,
    claim: ClaimedEmail,
    result: DeliveryResult,
    worker_id: str,
) -> None:
    with Session(bind=connection) as session:
        if claim.is_reminder:
            _record_reminder(session, ctx, claim, result)
        else:
            _record_slowly(session, ctx, claim, result, worker_id)
        session.flush()


def _record_sent(
    connection: Connection, ours: list[tuple[ClaimedEmail, DeliveryResult]], now: datetime
) -> None:
    """Steps' emails the server accepted and `_mark_messages` marked sent, their runs
    still this worker's: recorded in plain statements for all of them."""
    if not ours:
        return
    steps = [SentStep.of(c) for c, _ in ours]
    attempts = record_steps_sent(connection, steps, now, tried=True, message_done=True)
    tries = [
        (step.message_pk, attempts[step.run_id], r.outcome, r.code, r.reply)
        for step, (_, r) in zip(steps, ours, strict=True)
    ]
    _ATTEMPTS.run(connection, {**_TRIES.bind(tries, connection.dialect), "now": now})


def _record_slowly(
    session: Session, ctx: Context, claim: ClaimedEmail, result: DeliveryResult, worker_id: str
) -> None:
    """Retries, failures, auth trouble, unknowns and late knowledge: the ORM's clarity."""
    now = ctx.clock.now()
    run = session.get_one(StepRun, claim.run_id, with_for_update=True)
    enrollment = session.get_one(Enrollment, run.enrollment_id, with_for_update=True)
    message = session.get_one(Message, claim.message_pk)
    ours = message.status == MessageStatus.HANDING and run.locked_by == worker_id
    if not ours and message.status != MessageStatus.UNKNOWN:
        return  # taken over after our lease expired: the new owner records it
    run.attempts += 1
    _attempted(session, message, run.attempts, result, now)
    run.locked_by = run.locked_until = None
    outcome = result.outcome
    if outcome is DeliveryOutcome.SENT:
        if message.status == MessageStatus.UNKNOWN:  # recovered too early; we know better now
            enrollment.needs_attention = False
        session.flush()  # the attempt counted above: record_step_sent does not count it
        sent = SentStep.of_rows(run, enrollment, message)
        record_step_sent(session.connection(), sent, now, tried=False, session=session)
    elif outcome is DeliveryOutcome.TRANSIENT and run.attempts < MAX_ATTEMPTS:
        message.status = MessageStatus.PREPARED
        run.status, run.last_error, run.wait_reason = (
            PENDING,
            message.smtp_reply,
            StepWaitReason.RETRY,
        )
        run.due_at = now + backoff(run.attempts)
    elif outcome is DeliveryOutcome.AUTH_FAILED:
        _hold_for_mailbox(session, ctx, claim.mailbox_id, message, run, message.smtp_reply)
    elif outcome is DeliveryOutcome.UNKNOWN:
        mark_unknown(session, run, enrollment, message, result.reply)
    elif _refuses_everyone(session, claim.mailbox_id, message, now):
        reason = (
            f"{REFUSALS_IN_A_ROW} permanent refusals in a row, to different recipients: "
            f"the mailbox is paused until its server is fixed (last: {message.smtp_reply})"
        )
        _hold_for_mailbox(session, ctx, claim.mailbox_id, message, run, reason)
    else:
        message.status = MessageStatus.FAILED
        fail_step(session, ctx, run, enrollment, message.smtp_reply)


def _hold_for_mailbox(
    session: Session,
    ctx: Context,
    mailbox_id: int,
    message: Message,
    run: StepRun,
    reason: str | None,
) -> None:
    """The server refused the mailbox itself: it is disconnected with the reason, and this
    step waits with its others until someone fixes and reconnects it (nothing fails)."""
    _disconnect(session, ctx, mailbox_id, reason, ctx.clock.now())
    message.status = MessageStatus.PREPARED
    run.status, run.wait_reason, run.last_error = (
        PENDING,
        StepWaitReason.MAILBOX_DISCONNECTED,
        reason,
    )
    run.attempts -= 1  # waiting for the mailbox to be fixed is not a failed try


def _refuses_everyone(session: Session, mailbox_id: int, message: Message, now: datetime) -> bool:
    """A relay that refuses every message in words no rule reads (domain.delivery_outcome):
    this refusal and the mailbox's hand-overs just before it, REFUSALS_IN_A_ROW in all
    within a day, were all permanent refusals, each of a different recipient."""
    earlier = session.execute(
        select(DeliveryAttempt.outcome, Message.to_email)
        .join(Message, Message.id == DeliveryAttempt.message_id)
        .where(
            Message.mailbox_id == mailbox_id,
            DeliveryAttempt.message_id != message.id,
            DeliveryAttempt.at > now - REFUSALS_WITHIN,
        )
        .order_by(DeliveryAttempt.at.desc(), DeliveryAttempt.id.desc())
        .limit(REFUSALS_IN_A_ROW - 1)
    ).all()
    recipients = {message.to_email, *(to for _, to in earlier)}
    return (
        len(earlier) == REFUSALS_IN_A_ROW - 1
        and all(outcome == DeliveryOutcome.PERMANENT for outcome, _ in earlier)
        and len(recipients) == REFUSALS_IN_A_ROW
    )


def _attempted(
    session: Session, message: Message, attempt: int, result: DeliveryResult, now: datetime
) -> None:
    """The try's row and the server's last word on the message: every email, every try."""
    session.add(
        DeliveryAttempt(
            message_id=message.id,
            attempt=attempt,
            outcome=str(result.outcome),
            code=result.code,
            reply=result.reply,
            at=now,
        )
    )
    message.smtp_reply = result.reply_line


def _disconnect(
    session: Session, ctx: Context, mailbox_id: int, reason: str | None, now: datetime
) -> None:
    """The server refused the mailbox itself: nothing more leaves until it is fixed."""
    mailbox = session.get_one(Mailbox, mailbox_id, with_for_update=True)
    mark_disconnected(session, ctx, mailbox, reason, now)


def _record_reminder(
    session: Session, ctx: Context, claim: ClaimedEmail, result: DeliveryResult
) -> None:
    """A reminder's outcome: sent, failed or unknown, tried once (at most once, ever)."""
    now = ctx.clock.now()
    message = session.get_one(Message, claim.message_pk, with_for_update=True)
    if message.status != MessageStatus.HANDING:
        return  # taken back by recovery meanwhile: it says what became of it
    _attempted(session, message, 1, result, now)
    if result.outcome is DeliveryOutcome.SENT:
        message.status, message.sent_at = MessageStatus.SENT, now
    elif result.outcome is DeliveryOutcome.UNKNOWN:
        message.status = MessageStatus.UNKNOWN
    else:
        if result.outcome is DeliveryOutcome.AUTH_FAILED:
            _disconnect(session, ctx, claim.mailbox_id, message.smtp_reply, now)
        message.status = MessageStatus.FAILED


def backoff(attempt: int) -> timedelta:
    """Exponential, capped, with ±25% jitter so a server's retry storm is spread out."""
    delay: timedelta = min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_CAP)
    return delay * random.uniform(0.75, 1.25)
