"""The delivery protocol that makes "each email step is sent at most once, ever" true.

A step run moves pending → sending (claimed under a lease, message composed and
stored) → handing (committed *before* a byte goes to the server) → sent / failed /
unknown. Whatever dies where:

- before `handing` is committed: the lease expires, the run is pending again and the
  same stored message (same Message-ID) is sent later by any worker;
- after it: the outcome is unknown, the run is marked `unknown` for a person to
  review and is never sent again automatically.

Claims lock the mailbox row, so the mailbox's send slots (its throttle) are shared
by all workers, and emails of one mailbox are granted slots in due order.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from cadenza.domain import schedule
from cadenza.domain.contact_fields import parse_timezone
from cadenza.domain.delivery import DeliveryOutcome, DeliveryResult
from cadenza.domain.enums import (
    LIVE_ENROLLMENT_STATES,
    EnrollmentState,
    StepRunStatus,
    StepType,
)
from cadenza.domain.errors import CadenzaError
from cadenza.domain.sequence_settings import SequenceSettings
from cadenza.domain.throttle import plan_slots, spacing
from cadenza.services.compose import MessageSources, compose
from cadenza.services.context import Context
from cadenza.services.enrollment_control import end_enrollment
from cadenza.services.progress import after_step_completed
from cadenza.store.models import (
    Contact,
    DeliveryAttempt,
    Enrollment,
    Mailbox,
    Message,
    StepRun,
    User,
)

MAX_ATTEMPTS = 5
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=2)
PENDING = str(StepRunStatus.PENDING)
SENDING = str(StepRunStatus.SENDING)


@dataclass(frozen=True)
class ClaimedEmail:
    run_id: int
    enrollment_id: int
    message_pk: int
    mailbox_id: int
    slot: datetime  # not to be handed over before this instant (the mailbox's spacing)
    sender: str
    recipient: str
    raw: bytes
    spacing: timedelta  # the least time after the mailbox's previous hand-over
    last_step: bool  # no step follows: the enrollment finishes when this one is sent


class HandOver(StrEnum):
    GO = "go"
    SKIP = "skip"  # paused, unenrolled, disconnected, or no longer ours
    WAIT = "wait"  # the mailbox's previous email left too recently (it was late)


def _sends_email():
    return or_(StepRun.step_type == str(StepType.EMAIL), StepRun.send_ready.is_(True))


def _settings_of(enrollment: Enrollment) -> SequenceSettings:
    return _parse_settings(json.dumps(enrollment.settings_snapshot, sort_keys=True))


@lru_cache(maxsize=256)
def _parse_settings(key: str) -> SequenceSettings:
    return SequenceSettings.from_dict(json.loads(key))


def mailboxes_with_due_email(ctx: Context, limit: int = 50) -> list[int]:
    """Mailboxes with due emails, most overdue first: one index range scan of due runs."""
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        rows = session.execute(
            select(StepRun.mailbox_id, func.min(StepRun.due_at))
            .where(StepRun.status == PENDING, StepRun.due_at <= now, _sends_email())
            .group_by(StepRun.mailbox_id)
            .order_by(func.min(StepRun.due_at))
            .limit(limit)
        )
        return [mailbox_id for mailbox_id, _ in rows]


def _sent_last_24h(session: Session, mailbox_id: int, now: datetime) -> int:
    return session.scalar(
        select(func.count())
        .select_from(Message)
        .where(
            Message.mailbox_id == mailbox_id,
            or_(
                Message.sent_at > now - timedelta(hours=24),
                Message.status.in_(("prepared", "handing")),
            ),
        )
    )


def _mark_waiting(session: Session, run_ids: list[int], reason: str) -> None:
    if run_ids:
        session.execute(
            update(StepRun)
            .where(
                StepRun.id.in_(run_ids),
                or_(StepRun.wait_reason.is_(None), StepRun.wait_reason != reason),
            )
            .values(wait_reason=reason)
        )


def claim_emails(
    ctx: Context,
    mailbox_id: int,
    worker_id: str,
    *,
    batch_size: int,
    horizon: timedelta,
    lease: timedelta,
) -> list[ClaimedEmail]:
    """Claims this mailbox's due emails that fit its throttle before now + horizon."""
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        mailbox = session.scalar(
            select(Mailbox).where(Mailbox.id == mailbox_id).with_for_update(skip_locked=True)
        )
        if mailbox is None:
            return []  # another worker is claiming for this mailbox right now
        due = list(
            session.execute(
                select(StepRun, Enrollment)
                .join(Enrollment, StepRun.enrollment_id == Enrollment.id)
                .where(
                    StepRun.mailbox_id == mailbox_id,
                    StepRun.status == PENDING,
                    StepRun.due_at <= now,
                    _sends_email(),
                )
                .order_by(StepRun.due_at, StepRun.id)
                .limit(batch_size)
                .with_for_update(of=StepRun)
            )
        )
        if not due:
            return []
        if not mailbox.connected:
            _mark_waiting(session, [run.id for run, _ in due], "mailbox_disconnected")
            return []
        sendable = []
        for run, enrollment in due:
            allowed_from = _follow_up_allowed_from(run, enrollment, now)
            if allowed_from > now:
                run.due_at, run.wait_reason = allowed_from, "send_window"
            else:
                sendable.append((run, enrollment))
        room = mailbox.daily_limit - _sent_last_24h(session, mailbox_id, now)
        plan = plan_slots(
            next_free=mailbox.next_send_at,
            now=now,
            horizon=now + horizon,
            per_minute_limit=mailbox.per_minute_limit,
            bulk_first=[run.bulk_first for run, _ in sendable],
            daily_room=room,
        )
        granted = sendable[: len(plan.slots)]
        held = [run.id for run, _ in sendable[len(plan.slots) :]]
        _mark_waiting(session, held, "daily_limit" if room <= len(granted) else "rate_limit")
        mailbox.next_send_at = plan.next_free
        return _prepare(session, ctx, mailbox, granted, plan.slots, worker_id, lease, now)


def _follow_up_allowed_from(run: StepRun, enrollment: Enrollment, now: datetime) -> datetime:
    """A follow-up held back (throttle, retry, pause) still obeys its days and window."""
    if run.step_position == enrollment.start_step:
        return now
    settings = _settings_of(enrollment)
    if settings.send_window is None and settings.follow_up_days == "every_day":
        return now
    tz = parse_timezone(enrollment.timezone)
    return max(
        now, schedule.normalize_follow_up(now.astimezone(tz).replace(tzinfo=None), tz, settings)
    )


def _prepare(session, ctx, mailbox, granted, slots, worker_id, lease, now) -> list[ClaimedEmail]:
    if not granted:
        return []
    contact_ids = {e.contact_id for _, e in granted}
    user_ids = {e.enrolled_by_id for _, e in granted}
    contacts = {
        c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))
    }
    users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(user_ids)))}
    sources = MessageSources.load(session, [(run, enrollment) for run, enrollment in granted])
    composed = []
    for (run, enrollment), slot in zip(granted, slots, strict=True):
        try:
            message = compose(
                sources,
                run,
                enrollment,
                contacts[enrollment.contact_id],
                users[enrollment.enrolled_by_id],
                mailbox,
                now,
            )
        except CadenzaError as exc:
            _fail(session, ctx, run, enrollment, None, f"could not render: {exc.message}")
            continue
        if message.id is None:
            session.add(message)
        run.status, run.locked_by, run.locked_until = SENDING, worker_id, slot + lease
        run.wait_reason = None
        composed.append((run, enrollment, message, slot))
    session.flush()  # one round of INSERTs for the whole batch
    return [
        ClaimedEmail(
            run.id,
            run.enrollment_id,
            message.id,
            mailbox.id,
            slot,
            mailbox.from_email,
            message.to_email,
            message.raw.encode("utf-8"),
            spacing(mailbox.per_minute_limit, bulk_first=False),
            run.step_position >= len(enrollment.steps_snapshot),
        )
        for run, enrollment, message, slot in composed
    ]


# The per-email statements, built once: constructing SQLAlchemy statements costs more
# than running these on SQLite, and this is the hot path of every send.
def _owned_by_worker(*conditions):
    return (
        select(StepRun.id)
        .where(StepRun.id == bindparam("run_id"), StepRun.locked_by == bindparam("worker"))
        .where(*conditions)
        .exists()
    )


_STATE = (
    select(Enrollment.state, Mailbox.connected)
    .join(Mailbox, Mailbox.id == Enrollment.mailbox_id)
    .where(Enrollment.id == bindparam("enrollment_id"))
)
_STATE_FOR_UPDATE = _STATE.with_for_update(of=Enrollment)
_MAILBOX_SLOT = (
    update(Mailbox)
    .where(
        Mailbox.id == bindparam("mailbox_id"),
        or_(Mailbox.last_handed_at.is_(None), Mailbox.last_handed_at <= bindparam("earliest")),
    )
    .values(last_handed_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)
_HAND_OVER = (
    update(Message)
    .where(
        Message.id == bindparam("pk"),
        Message.status == "prepared",
        _owned_by_worker(StepRun.status == SENDING),
    )
    .values(status="handing", handed_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)
_MARK_SENT = (
    update(Message)
    .where(Message.id == bindparam("pk"), Message.status == "handing", _owned_by_worker())
    .values(status="sent", sent_at=bindparam("now"), smtp_reply=bindparam("reply"))
    .execution_options(synchronize_session=False)
)
_RUN_SENT = (
    update(StepRun)
    .where(StepRun.id == bindparam("run_id"))
    .values(
        status=str(StepRunStatus.SENT),
        completed_at=bindparam("now"),
        attempts=StepRun.attempts + 1,
        locked_by=None,
        locked_until=None,
        last_error=None,
    )
    .returning(StepRun.attempts, StepRun.step_position)
    .execution_options(synchronize_session=False)
)
_FINISH = (
    update(Enrollment)
    .where(
        Enrollment.id == bindparam("enrollment_id"),
        Enrollment.state.in_([str(s) for s in LIVE_ENROLLMENT_STATES]),
    )
    .values(state=str(EnrollmentState.FINISHED), ended_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)
_ATTEMPT = insert(DeliveryAttempt).values(
    message_id=bindparam("pk"),
    attempt=bindparam("attempt"),
    outcome=bindparam("outcome"),
    code=bindparam("code"),
    reply=bindparam("reply"),
    at=bindparam("now"),
)


def begin_handing(session: Session, ctx: Context, claim: ClaimedEmail, worker_id: str) -> HandOver:
    """The last check before a message leaves, and the commit point of "maybe sent".

    Locks the enrollment, so an unenroll or pause either happens before (and the
    message never leaves) or after (and it is recorded as sent, then unenrolled). Takes
    the mailbox's hand-over mark, so actual sends stay spaced even when one was late.
    Plain statements rather than ORM loads: this runs once per email, on the hot path.
    """
    now = ctx.clock.now()
    state, connected = (
        session.connection()
        .execute(
            _STATE_FOR_UPDATE if ctx.db.dialect == "postgresql" else _STATE,
            {"enrollment_id": claim.enrollment_id},
        )
        .one()
    )
    if state == EnrollmentState.ACTIVE and connected:
        handed = session.connection().execute(
            _HAND_OVER,
            {"pk": claim.message_pk, "run_id": claim.run_id, "worker": worker_id, "now": now},
        )
        if handed.rowcount != 1:
            return HandOver.SKIP  # our lease expired and someone else took over
        slot = {"mailbox_id": claim.mailbox_id, "earliest": now - claim.spacing, "now": now}
        if session.connection().execute(_MAILBOX_SLOT, slot).rowcount == 1:
            return HandOver.GO
        session.execute(  # rare: the previous email left late; take the mark back
            update(Message)
            .where(Message.id == claim.message_pk)
            .values(status="prepared", handed_at=None)
            .execution_options(synchronize_session=False)
        )
        return HandOver.WAIT
    run = session.get(StepRun, claim.run_id, with_for_update=True)
    if run.status == SENDING and run.locked_by == worker_id:
        _release(run, state)
    return HandOver.SKIP


def _release(run: StepRun, enrollment_state: str) -> None:
    run.locked_by = run.locked_until = None
    if enrollment_state == EnrollmentState.PAUSED:
        run.status = str(StepRunStatus.PAUSED)
    elif enrollment_state == EnrollmentState.ACTIVE:  # its mailbox was disconnected
        run.status, run.wait_reason = PENDING, "mailbox_disconnected"
    else:
        run.status = str(StepRunStatus.CANCELLED)


def _record_sent(
    session: Session, ctx: Context, claim: ClaimedEmail, result: DeliveryResult, worker_id: str
) -> bool:
    """The common case in three statements; False when the slow path must decide."""
    now = ctx.clock.now()
    reply = f"{result.code or ''} {result.reply}".strip()
    params = {"pk": claim.message_pk, "run_id": claim.run_id, "worker": worker_id, "now": now}
    if session.connection().execute(_MARK_SENT, {**params, "reply": reply}).rowcount != 1:
        return False
    attempts, position = session.connection().execute(_RUN_SENT, params).one()
    session.connection().execute(
        _ATTEMPT,
        {"pk": claim.message_pk, "attempt": attempts, "outcome": str(result.outcome),
         "code": result.code, "reply": result.reply, "now": now},
    )  # fmt: skip
    if claim.last_step:  # the common end of a sequence, without loading its snapshot
        session.connection().execute(_FINISH, {"enrollment_id": claim.enrollment_id, "now": now})
    else:
        enrollment = session.get(Enrollment, claim.enrollment_id, with_for_update=True)
        after_step_completed(session, enrollment, position, now)
    return True


def record_outcome(
    session: Session, ctx: Context, claim: ClaimedEmail, result: DeliveryResult, worker_id: str
) -> None:
    if result.outcome is DeliveryOutcome.SENT and _record_sent(
        session, ctx, claim, result, worker_id
    ):
        return
    now = ctx.clock.now()
    run = session.get(StepRun, claim.run_id, with_for_update=True)
    enrollment = session.get(Enrollment, run.enrollment_id, with_for_update=True)
    message = session.get(Message, claim.message_pk)
    ours = message.status == "handing" and run.locked_by == worker_id
    if not ours and message.status != "unknown":
        return  # taken over after our lease expired: the new owner records it
    run.attempts += 1
    session.add(
        DeliveryAttempt(
            message_id=message.id,
            attempt=run.attempts,
            outcome=str(result.outcome),
            code=result.code,
            reply=result.reply,
            at=now,
        )
    )
    message.smtp_reply = f"{result.code or ''} {result.reply}".strip()
    run.locked_by = run.locked_until = None
    outcome = result.outcome
    if outcome is DeliveryOutcome.SENT:
        if message.status == "unknown":  # recovered too early; we know better now
            enrollment.needs_attention = False
        message.status, message.sent_at = "sent", now
        run.status, run.completed_at, run.last_error = str(StepRunStatus.SENT), now, None
        after_step_completed(session, enrollment, run.step_position, now)
    elif outcome is DeliveryOutcome.TRANSIENT and run.attempts < MAX_ATTEMPTS:
        message.status = "prepared"
        run.status, run.last_error, run.wait_reason = PENDING, message.smtp_reply, "retry"
        run.due_at = now + backoff(run.attempts)
    elif outcome is DeliveryOutcome.AUTH_FAILED:
        mailbox = session.get(Mailbox, claim.mailbox_id, with_for_update=True)
        mailbox.connected, mailbox.disconnected_reason = False, message.smtp_reply
        message.status = "prepared"
        run.status, run.wait_reason, run.last_error = (
            PENDING,
            "mailbox_disconnected",
            message.smtp_reply,
        )
        run.attempts -= 1  # waiting for credentials is not a failed try
    elif outcome is DeliveryOutcome.UNKNOWN:
        mark_unknown(run, enrollment, message, result.reply)
    else:
        message.status = "failed"
        _fail(session, ctx, run, enrollment, message, message.smtp_reply)


def backoff(attempt: int) -> timedelta:
    """Exponential, capped, with ±25% jitter so a server's retry storm is spread out."""
    delay = min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_CAP)
    return delay * random.uniform(0.75, 1.25)


def mark_unknown(run: StepRun, enrollment: Enrollment, message: Message, why: str) -> None:
    message.status = "unknown"
    run.status, run.last_error = str(StepRunStatus.UNKNOWN), why
    run.locked_by = run.locked_until = None
    enrollment.needs_attention = True


def _fail(session, ctx, run, enrollment, message, reason: str) -> None:
    """A step that cannot be sent ends the enrollment, flagged, with the reason kept."""
    run.status, run.last_error = str(StepRunStatus.FAILED), reason
    run.locked_by = run.locked_until = None
    enrollment.needs_attention = True
    if enrollment.state in (EnrollmentState.ACTIVE, EnrollmentState.PAUSED):
        end_enrollment(session, ctx, enrollment, "send_failed", reason)


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
            if message is not None and message.status == "handing":
                enrollment = session.get(Enrollment, run.enrollment_id)
                mark_unknown(run, enrollment, message, "the worker stopped while handing it over")
            else:
                run.status, run.locked_by, run.locked_until = PENDING, None, None
        return len(runs)


def release_unsent(ctx: Context, claims: list[ClaimedEmail], worker_id: str) -> None:
    """On shutdown: claims not yet handed over go back to pending for other workers."""
    ids = [c.run_id for c in claims]
    if not ids:
        return
    with ctx.db.transaction() as session:
        session.execute(
            update(StepRun)
            .where(StepRun.id.in_(ids), StepRun.status == SENDING, StepRun.locked_by == worker_id)
            .values(status=PENDING, locked_by=None, locked_until=None)
        )


def next_due_at(ctx: Context) -> datetime | None:
    """When the next pending step run is due (possibly already past, if held back)."""
    with ctx.db.transaction() as session:
        return session.scalar(select(func.min(StepRun.due_at)).where(StepRun.status == PENDING))


def next_wakeup(ctx: Context) -> datetime | None:
    """The next moment a tick can do something: a step falls due, a held-back mailbox
    gets its next send slot, or its rolling 24-hour window frees room."""
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        candidates = [
            session.scalar(
                select(func.min(StepRun.due_at)).where(
                    StepRun.status == PENDING, StepRun.due_at > now
                )
            )
        ]
        held = select(StepRun.mailbox_id).where(
            StepRun.status == PENDING, StepRun.due_at <= now, StepRun.wait_reason.is_not(None)
        )
        for mailbox in session.scalars(select(Mailbox).where(Mailbox.id.in_(held))):
            candidates.append(mailbox.next_send_at)
            oldest = session.scalar(
                select(func.min(Message.sent_at)).where(
                    Message.mailbox_id == mailbox.id, Message.sent_at > now - timedelta(hours=24)
                )
            )
            candidates.append(oldest + timedelta(hours=24, seconds=1) if oldest else None)
    future = [c for c in candidates if c is not None and c > now]
    return min(future) if future else None
