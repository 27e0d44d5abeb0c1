"""The outbox: sent and waiting emails, and the review of sends whose outcome is unknown."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from cadenza.domain.enums import (
    LIVE_ENROLLMENT_STATES,
    EnrollmentState,
    MessageStatus,
    StepRunStatus,
    StepType,
    UnenrollReason,
)
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import Action, Resource
from cadenza.services.access import authorize, owner_filter
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.counters import deltas as counters
from cadenza.services.counters.deltas import StepOf
from cadenza.services.crm.contacts import ContactView
from cadenza.services.delivery.handover import MAX_ATTEMPTS
from cadenza.services.delivery.sent_steps import SentStep, record_step_sent
from cadenza.services.enrollment.control import reopen_after_failed_send
from cadenza.services.enrollment.enroll import contact_refusal
from cadenza.services.lookup import fetch
from cadenza.services.read_models import copy_row
from cadenza.store.models import Contact, DeliveryAttempt, Enrollment, Mailbox, Message, StepRun

MESSAGE_STATUSES = tuple(MessageStatus)


@dataclass(frozen=True)
class MessageView:
    """An email as the outbox, the API and a contact's page show it."""

    id: int
    step_run_id: int | None
    enrollment_id: int | None
    mailbox_id: int
    contact_id: int | None
    message_id: str
    in_reply_to: str | None
    references: str | None
    from_email: str
    to_email: str
    subject: str
    body_html: str
    body_text: str
    raw: str | None
    tracking_id: str | None
    links: list[Any] | None
    status: str
    smtp_reply: str | None
    handed_at: datetime | None
    sent_at: datetime | None
    bounced_at: datetime | None
    created_at: datetime
    variant: str | None  # the A/B variant of its step it carries

    @classmethod
    def of(cls, row: Message) -> MessageView:
        return copy_row(cls, row)


@dataclass(frozen=True)
class AttemptView:
    """One hand-over of a message to its server, and what the server said."""

    id: int
    message_id: int
    attempt: int
    outcome: str
    code: int | None
    reply: str | None
    at: datetime


@dataclass(frozen=True)
class WaitingStep:
    """An email step that is due or held back, with whom it is for and why it waits."""

    id: int
    enrollment_id: int
    mailbox_id: int
    step_position: int
    step_type: str
    status: str
    due_at: datetime
    attempts: int
    wait_reason: str | None
    last_error: str | None
    timezone: str  # the enrollment's: the contact's time
    contact: ContactView

    @classmethod
    def of(cls, row: StepRun) -> WaitingStep:
        enrollment = row.enrollment
        return copy_row(
            cls, row, timezone=enrollment.timezone, contact=ContactView.of(enrollment.contact)
        )


def list_messages(
    ctx: Context,
    *,
    status: str | None = None,
    enrollment_id: int | None = None,
    owner_id: int | None = None,
    contact_id: int | None = None,
    limit: int = 50,
    after_id: int | None = None,
    actor_id: int | None = None,
) -> list[MessageView]:
    """Newest first; `owner_id` keeps the messages of that user's mailboxes only, and a
    member acting sees only those of their own mailboxes whatever they ask."""
    if status is not None and status not in MESSAGE_STATUSES:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, f"status must be one of {', '.join(MESSAGE_STATUSES)}"
        )
    query = select(Message).order_by(Message.id.desc()).limit(limit)
    if status:
        query = query.where(Message.status == status)
    if enrollment_id is not None:
        query = query.where(Message.enrollment_id == enrollment_id)
    if contact_id is not None:
        query = query.where(Message.contact_id == contact_id)
    if after_id is not None:
        query = query.where(Message.id < after_id)
    with ctx.db.read() as session:
        for owner in (owner_id, owner_filter(session, actor_id, Resource.MESSAGE)):
            if owner is not None:
                owned = select(Mailbox.id).where(Mailbox.owner_id == owner)
                query = query.where(Message.mailbox_id.in_(owned))
        return [MessageView.of(row) for row in session.scalars(query)]


def _not_found(message_id: int) -> CadenzaError:
    return CadenzaError(
        ErrorCode.NOT_FOUND, f"message {message_id} does not exist", {"id": message_id}
    )


def _authorize(session: Session, actor_id: int | None, message: Message, action: Action) -> None:
    """A message belongs to the owner of the mailbox it is sent from; to anyone else
    it does not exist."""
    owner = session.get_one(Mailbox, message.mailbox_id).owner_id
    authorize(
        session, actor_id, Resource.MESSAGE, action, [owner], hidden_as=_not_found(message.id)
    )


def get_message(
    ctx: Context, message_id: int, *, actor_id: int | None = None
) -> tuple[MessageView, list[AttemptView]]:
    with ctx.db.read() as session:
        message = fetch(session, Message, message_id)
        _authorize(session, actor_id, message, Action.READ)
        attempts = session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.message_id == message_id)
            .order_by(DeliveryAttempt.attempt)
        )
        return MessageView.of(message), [copy_row(AttemptView, a) for a in attempts]


def list_waiting(
    ctx: Context, limit: int = 50, owner_id: int | None = None, *, actor_id: int | None = None
) -> list[WaitingStep]:
    """Email steps that are due or held back, with the reason each one waits.

    `owner_id` keeps the steps of that user's mailboxes only; each comes with its
    contact and the enrollment's time zone, so a page can name who it is for.
    """
    query = (
        select(StepRun)
        .where(StepRun.status == StepRunStatus.PENDING)
        .where(StepRun.step_type.in_((StepType.EMAIL, StepType.MANUAL_EMAIL)))
        .order_by(StepRun.due_at)
        .limit(limit)
        .options(selectinload(StepRun.enrollment).selectinload(Enrollment.contact))
    )
    with ctx.db.read() as session:
        for owner in (owner_id, owner_filter(session, actor_id, Resource.MESSAGE)):
            if owner is not None:
                query = query.where(
                    StepRun.mailbox_id.in_(select(Mailbox.id).where(Mailbox.owner_id == owner))
                )
        return [WaitingStep.of(row) for row in session.scalars(query)]


def resolve_unknown(
    ctx: Context, message_id: int, *, delivered: bool, actor_id: int | None = None
) -> MessageView:
    """A person decides what the engine never guesses: was it delivered or not?

    Delivered: the step counts as sent when it was handed over and the sequence goes
    on. Not delivered: the same message (same Message-ID) is queued to be sent again.
    """
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        message = fetch(session, Message, message_id, for_update=True)
        _authorize(session, actor_id, message, Action.UPDATE)
        if message.status != MessageStatus.UNKNOWN:
            raise CadenzaError(
                ErrorCode.INVALID_STATE,
                f"message {message_id} is {message.status}: only unknown sends are reviewed",
            )
        if message.step_run_id is None:  # a task reminder: no step to move on or resend
            message.status = MessageStatus.SENT if delivered else MessageStatus.FAILED
            message.sent_at = (message.handed_at or now) if delivered else None
        else:
            _review_step(session, message, delivered, now)
        record(
            session,
            ctx,
            actor_id,
            "message.review",
            "message",
            message_id,
            {"delivered": delivered},
        )
        return MessageView.of(message)


def _review_step(session: Session, message: Message, delivered: bool, now: datetime) -> None:
    run = session.get_one(StepRun, message.step_run_id, with_for_update=True)
    enrollment = session.get_one(Enrollment, run.enrollment_id, with_for_update=True)
    enrollment.needs_attention = False
    if delivered:
        session.flush()
        sent = SentStep.of_rows(run, enrollment, message)
        sent_at = message.handed_at or now
        record_step_sent(session.connection(), sent, sent_at, tried=False, session=session)
        session.refresh(message)
    elif enrollment.state in LIVE_ENROLLMENT_STATES:
        message.status = MessageStatus.PREPARED
        _run_moved(
            session,
            run,
            enrollment,
            StepRunStatus.PENDING
            if enrollment.state == EnrollmentState.ACTIVE
            else StepRunStatus.PAUSED,
        )
        run.due_at, run.wait_reason = now, None
    else:
        message.status = MessageStatus.FAILED
        _run_moved(session, run, enrollment, StepRunStatus.CANCELLED)


def _run_moved(
    session: Session, run: StepRun, enrollment: Enrollment, status: StepRunStatus
) -> None:
    """The run's new status, with its figures (services/counters)."""
    counters.run_moved(session, StepOf.of(run, enrollment.sequence_id), run.status, status)
    run.status = status


# A person may retry at most this many messages in one request (a page of the outbox).
RETRY_LIMIT = 200


@dataclass(frozen=True)
class RetryOutcome:
    message_id: int
    ok: bool
    code: str | None = None
    message: str | None = None


def retry_messages(
    ctx: Context,
    message_ids: list[int],
    *,
    reason: str,
    confirm_not_delivered: bool = False,
    actor_id: int | None = None,
) -> list[RetryOutcome]:
    """A person sends failed or unknown steps again, each on its own (one refused leaves
    the others): the same message (same Message-ID) is queued due now for one more try.

    A failed step's enrollment, ended by that failure, goes on, provided the contact may
    still be emailed in this sequence (not unsubscribed, bounced, blocked or enrolled
    again). An unknown send may have been delivered: it is sent again only when the
    person confirms it was not (`confirm_not_delivered`), the way `resolve_unknown` does.
    The reason is kept in the audit log.
    """
    reason = " ".join(reason.split())
    if not reason:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "say why the messages are retried")
    if not message_ids or len(message_ids) > RETRY_LIMIT:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, f"retry 1 to {RETRY_LIMIT} messages at a time"
        )
    outcomes = []
    with ctx.db.transaction() as session:
        for message_id in dict.fromkeys(message_ids):
            try:
                with session.begin_nested():
                    _retry_one(session, ctx, message_id, reason, confirm_not_delivered, actor_id)
                outcomes.append(RetryOutcome(message_id, True))
            except CadenzaError as exc:
                outcomes.append(RetryOutcome(message_id, False, str(exc.code), exc.message))
    return outcomes


def _retry_one(
    session: Session,
    ctx: Context,
    message_id: int,
    reason: str,
    confirm_not_delivered: bool,
    actor_id: int | None,
) -> None:
    now = ctx.clock.now()
    message = session.get(Message, message_id, with_for_update=True)
    if message is None:
        raise _not_found(message_id)
    _authorize(session, actor_id, message, Action.UPDATE)
    if message.step_run_id is None:
        raise CadenzaError(
            ErrorCode.INVALID_STATE, "a task reminder is not sent again: its moment has passed"
        )
    run = session.get_one(StepRun, message.step_run_id, with_for_update=True)
    enrollment = session.get_one(Enrollment, run.enrollment_id, with_for_update=True)
    was = message.status
    if message.status == MessageStatus.UNKNOWN:
        if not confirm_not_delivered:
            raise CadenzaError(
                ErrorCode.NOT_DELIVERED_UNCONFIRMED,
                "its delivery is unknown: it may have arrived. Confirm it was not delivered "
                "to send it again",
            )
        if enrollment.state not in LIVE_ENROLLMENT_STATES:
            raise CadenzaError(
                ErrorCode.INVALID_STATE, f"its enrollment has ended ({enrollment.reason})"
            )
        _review_step(session, message, False, now)
    elif message.status == MessageStatus.FAILED and run.status == StepRunStatus.FAILED:
        _reopen_failed(session, ctx, run, enrollment, actor_id)
        message.status = MessageStatus.PREPARED
        _run_moved(session, run, enrollment, StepRunStatus.PENDING)
        run.due_at, run.wait_reason = now, None
        # One more try, not a new series: a temporary failure now fails it again.
        run.attempts = MAX_ATTEMPTS - 1
    else:
        raise CadenzaError(
            ErrorCode.INVALID_STATE,
            f"message {message_id} is {message.status}: only failed and unknown sends are retried",
        )
    record(
        session,
        ctx,
        actor_id,
        "message.retry",
        "message",
        message_id,
        {
            "reason": reason,
            "was": str(was),
            "confirmed_not_delivered": confirm_not_delivered,
        },
    )


def _reopen_failed(
    session: Session, ctx: Context, run: StepRun, enrollment: Enrollment, actor_id: int | None
) -> None:
    if enrollment.state == EnrollmentState.UNENROLLED and enrollment.reason != (
        UnenrollReason.SEND_FAILED
    ):
        raise CadenzaError(
            ErrorCode.INVALID_STATE, f"its enrollment has ended since ({enrollment.reason})"
        )
    if enrollment.state in LIVE_ENROLLMENT_STATES:
        return  # still live (a failure that did not end it): the step alone goes again
    contact = session.get_one(Contact, enrollment.contact_id, with_for_update=True)
    refusal = contact_refusal(session, ctx, contact, enrollment.sequence_id)
    if refusal is not None:
        raise CadenzaError(refusal.code, refusal.message)
    reopen_after_failed_send(session, ctx, enrollment, actor_id=actor_id)
