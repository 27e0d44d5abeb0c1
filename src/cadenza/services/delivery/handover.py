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
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Exists,
    Integer,
    bindparam,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from cadenza.domain.counters import NO_VARIANT
from cadenza.domain.delivery_outcome import DeliveryOutcome, DeliveryResult
from cadenza.domain.enums import (
    EnrollmentState,
    MessageStatus,
    StepRunStatus,
    StepWaitReason,
    WebhookEvent,
)
from cadenza.services.context import Context
from cadenza.services.counters import deltas as counters
from cadenza.services.counters import messages as counted_messages
from cadenza.services.counters.deltas import StepOf
from cadenza.services.delivery.claims import PENDING, SENDING, ClaimedEmail
from cadenza.services.enrollment.progress import (
    after_step_completed,
    fail_step,
    finish_enrollment,
    mark_unknown,
)
from cadenza.services.events_out import webhooks
from cadenza.services.events_out.mailbox_state import mark_disconnected
from cadenza.store.models import DeliveryAttempt, Enrollment, Mailbox, Message, StepRun
from cadenza.store.prepared import Prepared
from cadenza.store.read_once import read_once

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


# The per-email statements, built and compiled once and run on the driver's cursor
# (store/prepared.py): this is the hot path of every send.
def _owned_by_worker(*conditions: ColumnElement[bool]) -> Exists:
    return (
        select(StepRun.id)
        .where(StepRun.id == bindparam("run_id"), StepRun.locked_by == bindparam("worker"))
        .where(*conditions)
        .exists()
    )


_STATE_QUERY = (
    select(Enrollment.state, Mailbox.connected)
    .join(Mailbox, Mailbox.id == Enrollment.mailbox_id)
    .where(Enrollment.id == bindparam("enrollment_id"))
)
_STATE = Prepared(_STATE_QUERY)
# A task digest belongs to no enrollment: only its mailbox's state counts.
_CONNECTED = Prepared(select(Mailbox.connected).where(Mailbox.id == bindparam("mailbox_id")))
_STATE_FOR_UPDATE = Prepared(_STATE_QUERY.with_for_update(of=Enrollment))
_MAILBOX_SLOT = Prepared(
    update(Mailbox)
    .where(
        Mailbox.id == bindparam("mailbox_id"),
        or_(Mailbox.last_handed_at.is_(None), Mailbox.last_handed_at <= bindparam("earliest")),
    )
    .values(last_handed_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)
_HAND_OVER = Prepared(
    update(Message)
    .where(
        Message.id == bindparam("pk"),
        Message.status == MessageStatus.PREPARED,
        _owned_by_worker(StepRun.status == SENDING),
    )
    .values(status=MessageStatus.HANDING, handed_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)
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
_MARK_SENT = Prepared(
    update(Message)
    .where(
        Message.id == bindparam("pk"), Message.status == MessageStatus.HANDING, _owned_by_worker()
    )
    .values(status=MessageStatus.SENT, sent_at=bindparam("now"), smtp_reply=bindparam("reply"))
    .execution_options(synchronize_session=False)
)
_MESSAGE_SENT = Prepared(
    update(Message)
    .where(Message.id == bindparam("pk"))
    .values(status=MessageStatus.SENT, sent_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)
_RUN_SENT = Prepared(
    update(StepRun)
    .where(StepRun.id == bindparam("run_id"))
    .values(
        status=StepRunStatus.SENT,
        completed_at=bindparam("now"),
        attempts=StepRun.attempts + bindparam("tries", type_=Integer),
        locked_by=None,
        locked_until=None,
        last_error=None,
    )
    .returning(StepRun.attempts, StepRun.step_type, StepRun.variant)
    .execution_options(synchronize_session=False)
)
_TAKE_BACK = Prepared(
    update(Message)
    .where(Message.id == bindparam("pk"))
    .values(status=MessageStatus.PREPARED, handed_at=None)
    .execution_options(synchronize_session=False)
)
_ATTEMPT = Prepared(
    insert(DeliveryAttempt).values(
        message_id=bindparam("pk"),
        attempt=bindparam("attempt"),
        outcome=bindparam("outcome"),
        code=bindparam("code"),
        reply=bindparam("reply"),
        at=bindparam("now"),
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
    server's crash) be paid once for many emails.

    The mailboxes' rows are locked (their hand-over mark) in mailbox order, so two
    workers handing over emails of the same mailboxes never wait on each other in a
    cycle. A Core connection rather than an ORM session: this runs for every email, and
    the session's bookkeeping cost more than the statements. The rare paths open a
    session on the same connection and transaction.
    """
    if len({claim.mailbox_id for claim in claims}) != len(claims):
        raise ValueError("one email per mailbox at a time: at most one may be unknown")
    answers: dict[int, HandOver] = {}
    with ctx.db.engine.begin() as connection, read_once(connection), counters.batched(connection):
        for done, result in finished:
            _record(connection, ctx, done, result, worker_id)
        now = ctx.clock.now()
        for claim in sorted(claims, key=lambda c: c.mailbox_id):
            answers[claim.mailbox_id] = _begin_handing(connection, ctx, claim, worker_id, now)
    return [answers[claim.mailbox_id] for claim in claims]


def record_outcomes(ctx: Context, finished: Finished, worker_id: str) -> None:
    if finished:
        with (
            ctx.db.engine.begin() as connection,
            read_once(connection),
            counters.batched(connection),
        ):
            for claim, result in finished:
                _record(connection, ctx, claim, result, worker_id)


def _begin_handing(
    connection: Connection, ctx: Context, claim: ClaimedEmail, worker_id: str, now: datetime
) -> HandOver:
    """The last check before a message leaves, and the commit point of "maybe sent".

    Locks the enrollment, so an unenroll or pause either happens before (and the
    message never leaves) or after (and it is recorded as sent, then unenrolled). Takes
    the mailbox's hand-over mark, so actual sends stay spaced even when one was late.
    `now` is the commit's one instant, shared by every email it marks.
    """
    if claim.enrollment_id is None:  # a task digest
        state = None
        (connected,) = _CONNECTED.run(connection, {"mailbox_id": claim.mailbox_id}).fetchone()
    else:
        state, connected = (
            (_STATE_FOR_UPDATE if ctx.db.dialect == "postgresql" else _STATE)
            .run(connection, {"enrollment_id": claim.enrollment_id})
            .fetchone()
        )
    # a task's reminder goes while its enrollment is live (an ended one closed the task)
    live = (
        state == EnrollmentState.ACTIVE
        or (claim.is_reminder and state == EnrollmentState.PAUSED)
        or claim.enrollment_id is None
    )
    if live and connected:
        hand = _HAND_OVER_REMINDER if claim.is_reminder else _HAND_OVER
        handed = hand.run(
            connection,
            {"pk": claim.message_pk, "run_id": claim.run_id, "worker": worker_id, "now": now},
        )
        if handed.rowcount != 1:
            return HandOver.SKIP  # our lease expired and someone else took over
        slot = {"mailbox_id": claim.mailbox_id, "earliest": now - claim.spacing, "now": now}
        if _MAILBOX_SLOT.run(connection, slot).rowcount == 1:
            return HandOver.GO
        _TAKE_BACK.run(connection, {"pk": claim.message_pk})
        return HandOver.WAIT  # rare: the previous email left late
    if claim.is_reminder:  # at most once: not retried later
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
    if claim.is_reminder:
        with Session(bind=connection) as session:
            _record_reminder(session, ctx, claim, result)
            session.flush()
        return
    if result.outcome is DeliveryOutcome.SENT and _record_sent(
        connection, ctx, claim, result, worker_id
    ):
        return
    with Session(bind=connection) as session:
        _record_slowly(session, ctx, claim, result, worker_id)
        session.flush()


def _record_sent(
    connection: Connection,
    ctx: Context,
    claim: ClaimedEmail,
    result: DeliveryResult,
    worker_id: str,
) -> bool:
    """The common case in plain statements; False when the slow path must decide."""
    now = ctx.clock.now()
    reply = f"{result.code or ''} {result.reply}".strip()
    params = {"pk": claim.message_pk, "run_id": claim.run_id, "worker": worker_id, "now": now}
    if _MARK_SENT.run(connection, {**params, "reply": reply}).rowcount != 1:
        return False
    attempts = record_step_sent(connection, SentStep.of(claim), now, tried=True, message_done=True)
    _ATTEMPT.run(
        connection,
        {"pk": claim.message_pk, "attempt": attempts, "outcome": result.outcome,
         "code": result.code, "reply": result.reply, "now": now},
    )  # fmt: skip
    return True


@dataclass(frozen=True)
class SentStep:
    """What recording a sent step needs, whoever knows it: a claim, or the stored rows."""

    run_id: int
    message_pk: int
    enrollment: dict[str, Any]  # as enrollment events carry it (webhooks.enrollment_event)
    step_position: int
    last_step: bool
    was: str = SENDING  # the run's status before: what its counters move from

    @classmethod
    def of(cls, claim: ClaimedEmail) -> SentStep:
        if claim.run_id is None:  # reminders are recorded by _record_reminder
            raise ValueError(f"message {claim.message_pk} is a task reminder, not a step")
        enrollment: dict[str, Any] = {
            "enrollment_id": claim.enrollment_id,
            "contact_id": claim.contact_id,
            "sequence_id": claim.sequence_id,
            "mailbox_id": claim.mailbox_id,
        }
        return cls(claim.run_id, claim.message_pk, enrollment, claim.step_position, claim.last_step)

    @classmethod
    def of_rows(cls, run: StepRun, enrollment: Enrollment, message: Message) -> SentStep:
        last = run.step_position >= len(enrollment.steps_snapshot)
        event = webhooks.enrollment_event(enrollment)
        return cls(run.id, message.id, event, run.step_position, last, run.status)


def record_step_sent(
    connection: Connection,
    sent: SentStep,
    sent_at: datetime,
    *,
    tried: bool,
    message_done: bool = False,
    session: Session | None = None,
) -> int:
    """The one way a step is recorded as sent: the message and the run marked sent, the
    `step_sent` event, then the next step scheduled or the enrollment finished.

    The worker's every send runs it (plain statements on its connection), and so do the
    slow path (a late or recovered send) and a person's review of an unknown send
    (outbox.resolve_unknown). `tried`: this counts as a delivery attempt of the run's;
    `message_done`: the caller's own guarded statement already marked the message.
    `session`: the caller's, when it holds the enrollment row. Returns the run's attempts.
    """
    if not message_done:
        _MESSAGE_SENT.run(connection, {"pk": sent.message_pk, "now": sent_at})
    params = {"run_id": sent.run_id, "now": sent_at, "tries": 1 if tried else 0}
    [(attempts, step_type, variant)] = _RUN_SENT.run(connection, params).fetchall()
    attempts = int(attempts)
    sequence_id = sent.enrollment["sequence_id"]
    step = StepOf(sequence_id, sent.step_position, variant or NO_VARIANT, step_type)
    counters.run_moved(connection, step, sent.was, StepRunStatus.SENT)
    counted_messages.message_sent(
        connection, sequence_id, sent.enrollment["enrollment_id"], sent.message_pk, sent_at
    )
    event = {
        "enrollment_id": sent.enrollment["enrollment_id"],
        "contact_id": sent.enrollment["contact_id"],
        "sequence_id": sent.enrollment["sequence_id"],
        "step_position": sent.step_position,
        "message_id": sent.message_pk,
    }
    webhooks.emit(connection, sent_at, WebhookEvent.STEP_SENT, event)
    if sent.last_step:  # the common end of a sequence, without loading its snapshot
        finish_enrollment(connection, sent.enrollment, sent_at)
        return attempts
    with Session(bind=connection) if session is None else _borrowed(session) as own:
        enrollment = own.get_one(Enrollment, sent.enrollment["enrollment_id"], with_for_update=True)
        after_step_completed(own, enrollment, sent.step_position, sent_at)
        own.flush()
    return attempts


@contextmanager
def _borrowed(session: Session) -> Iterator[Session]:
    yield session


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
    message.smtp_reply = f"{result.code or ''} {result.reply}".strip()


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
