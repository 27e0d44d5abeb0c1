"""Pause, resume and unenroll: each acts on the enrollment and its pending steps at once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cadenza.domain import schedule
from cadenza.domain.contact_fields import parse_timezone
from cadenza.domain.enums import (
    EnrollmentState,
    StepRunStatus,
    TaskStatus,
    UnenrollReason,
    WebhookEvent,
)
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import Action
from cadenza.domain.sequence_settings import SequenceSettings
from cadenza.domain.webhooks import REASON_EVENTS
from cadenza.services.access import authorize_enrollment
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.counters import deltas as counters
from cadenza.services.counters.deltas import step_of_run
from cadenza.services.events_out import triggers, webhooks
from cadenza.services.events_out.webhooks import enrollment_event
from cadenza.services.lookup import fetch
from cadenza.store.models import Contact, Enrollment, StepRun, Task

# The reasons a person (web, API, CLI) may give; AUTOMATION is the rules' own and
# TASK_OUTCOME a logged task outcome's (enrollment/task_log.py).
UNENROLL_REASONS = tuple(
    r for r in UnenrollReason if r not in (UnenrollReason.AUTOMATION, UnenrollReason.TASK_OUTCOME)
)


def lock_enrollment(
    session: Session, enrollment_id: int, actor_id: int | None = None
) -> Enrollment:
    enrollment = fetch(session, Enrollment, enrollment_id, for_update=True)
    authorize_enrollment(session, actor_id, enrollment, Action.UPDATE)
    return enrollment


def _require_state(enrollment: Enrollment, *states: EnrollmentState, action: str) -> None:
    if enrollment.state not in states:
        raise CadenzaError(
            ErrorCode.INVALID_STATE,
            f"enrollment {enrollment.id} is {enrollment.state}: it cannot be {action}",
            {"state": enrollment.state},
        )


def pause(ctx: Context, enrollment_id: int, actor_id: int | None = None) -> Enrollment:
    """The remaining delay of the waiting step is kept and restarts on resume."""
    with ctx.db.transaction() as session:
        enrollment = lock_enrollment(session, enrollment_id, actor_id)
        _require_state(enrollment, EnrollmentState.ACTIVE, action="paused")
        pause_enrollment(session, ctx, enrollment)
        record(session, ctx, actor_id, "enrollment.pause", "enrollment", enrollment_id)
    return enrollment


def pause_enrollment(session: Session, ctx: Context, enrollment: Enrollment) -> None:
    """Holds its pending steps, in the caller's transaction (a step being sent finishes)."""
    _moved(session, enrollment, EnrollmentState.PAUSED, None)
    enrollment.state = EnrollmentState.PAUSED
    enrollment.paused_at = ctx.clock.now()
    session.execute(
        update(StepRun)
        .where(
            StepRun.enrollment_id == enrollment.id,
            StepRun.status == StepRunStatus.PENDING,
        )
        .values(status=StepRunStatus.PAUSED)
    )
    webhooks.emit(session, enrollment.paused_at, WebhookEvent.PAUSED, enrollment_event(enrollment))


def resume(ctx: Context, enrollment_id: int, actor_id: int | None = None) -> Enrollment:
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        enrollment = lock_enrollment(session, enrollment_id, actor_id)
        _require_state(enrollment, EnrollmentState.PAUSED, action="resumed")
        tz = parse_timezone(enrollment.timezone)
        settings = SequenceSettings.from_dict(enrollment.settings_snapshot)
        paused_runs = session.scalars(
            select(StepRun).where(
                StepRun.enrollment_id == enrollment_id,
                StepRun.status == StepRunStatus.PAUSED,
            )
        )
        for run in paused_runs:
            run.due_at = resumed_due(run, enrollment, now, tz, settings)
            run.status = StepRunStatus.PENDING
        _moved(session, enrollment, EnrollmentState.ACTIVE, None)
        enrollment.state = EnrollmentState.ACTIVE
        enrollment.paused_at = enrollment.resume_at = None
        record(session, ctx, actor_id, "enrollment.resume", "enrollment", enrollment_id)
        webhooks.emit(session, now, WebhookEvent.RESUMED, enrollment_event(enrollment))
    return enrollment


def resumed_due(run: StepRun, enrollment: Enrollment, now: datetime, tz, settings) -> datetime:
    """Now plus what was left of the wait; follow-ups then obey the days and window rules."""
    paused_at = enrollment.paused_at or now
    remaining = max(run.due_at - paused_at, timedelta(0))
    due = now + remaining
    if run.step_position == enrollment.start_step:
        return due
    local_wall = due.astimezone(tz).replace(tzinfo=None)
    return schedule.normalize_follow_up(local_wall, tz, settings)


def unenroll(
    ctx: Context,
    enrollment_id: int,
    reason: UnenrollReason | str = UnenrollReason.MANUAL,
    *,
    detail: str | None = None,
    actor_id: int | None = None,
) -> Enrollment:
    if reason not in UNENROLL_REASONS:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"reason must be one of {', '.join(UNENROLL_REASONS)}",
        )
    reason = UnenrollReason(reason)
    with ctx.db.transaction() as session:
        enrollment = lock_enrollment(session, enrollment_id, actor_id)
        _require_state(
            enrollment, EnrollmentState.ACTIVE, EnrollmentState.PAUSED, action="unenrolled"
        )
        end_enrollment(session, ctx, enrollment, reason, detail, actor_id=actor_id)
    return enrollment


def end_enrollment(
    session: Session,
    ctx: Context,
    enrollment: Enrollment,
    reason: UnenrollReason,
    detail: str | None,
    *,
    actor_id: int | None = None,
    cause_event_id: int | None = None,
) -> None:
    """The one way an enrollment ends early, in the caller's transaction: cancels every
    step not yet done and every open task, reports it (webhooks, triggers) and audits it.

    Every path calls this — a person (`unenroll`), a signal (`signals.effects`, with the
    event that caused it), a step that cannot be sent (`progress.fail_step`) — so an
    unenrollment looks the same whoever caused it."""
    _moved(session, enrollment, EnrollmentState.UNENROLLED, reason)
    enrollment.state = EnrollmentState.UNENROLLED
    enrollment.reason = reason
    enrollment.reason_detail = detail
    enrollment.ended_at = ctx.clock.now()
    enrollment.paused_at = enrollment.resume_at = None
    if cause_event_id is not None:
        enrollment.cause_event_id = cause_event_id
    session.execute(
        update(StepRun)
        .where(
            StepRun.enrollment_id == enrollment.id,
            StepRun.status.in_(
                [
                    StepRunStatus.PENDING,
                    StepRunStatus.PAUSED,
                    StepRunStatus.WAITING_TASK,
                ]
            ),
        )
        .values(status=StepRunStatus.CANCELLED)
    )
    cancelled = session.scalars(
        update(Task)
        .where(Task.enrollment_id == enrollment.id, Task.status == TaskStatus.OPEN)
        .values(status=TaskStatus.CANCELLED)
        .returning(Task.step_run_id)
    ).all()
    for run_id in cancelled:  # exactly the tasks this statement closed
        if run_id is not None:
            counters.task_moved(
                session, step_of_run(session, run_id), TaskStatus.OPEN, TaskStatus.CANCELLED
            )
    event = {**enrollment_event(enrollment), "reason": reason, "detail": detail}
    webhooks.emit(session, enrollment.ended_at, WebhookEvent.UNENROLLED, event)
    if reason in REASON_EVENTS:
        webhooks.emit(session, enrollment.ended_at, REASON_EVENTS[reason], event)
    triggers.enrollment_ended(session, enrollment.ended_at, enrollment)
    audit: dict[str, object] = {"reason": reason, "detail": detail}
    if cause_event_id is not None:
        audit["event_id"] = cause_event_id
    record(session, ctx, actor_id, "enrollment.unenroll", "enrollment", enrollment.id, audit)


def reopen_after_failed_send(
    session: Session, ctx: Context, enrollment: Enrollment, *, actor_id: int | None
) -> None:
    """The one way an enrollment that ended on a failed send goes on: a person retries
    the step (delivery.outbox.retry_messages). It is live again, as if it had never
    ended; reported like a resume (webhook `resumed`) and audited."""
    _moved(session, enrollment, EnrollmentState.ACTIVE, None)
    enrollment.state = EnrollmentState.ACTIVE
    enrollment.reason = enrollment.reason_detail = enrollment.ended_at = None
    enrollment.needs_attention = False
    now = ctx.clock.now()
    record(session, ctx, actor_id, "enrollment.reopen", "enrollment", enrollment.id)
    webhooks.emit(session, now, WebhookEvent.RESUMED, enrollment_event(enrollment))


def _moved(
    session: Session, enrollment: Enrollment, state: EnrollmentState, reason: str | None
) -> None:
    """Its figures follow it (services/counters), from the state it had to this one."""
    counters.enrollment_moved(
        session, enrollment.sequence_id, (enrollment.state, enrollment.reason), (state, reason)
    )


@dataclass(frozen=True)
class BulkOutcome:
    enrollment_id: int
    ok: bool
    code: str | None = None
    message: str | None = None
    contact_id: int | None = None
    contact_name: str | None = None  # name, else email: what a person recognises


def for_many(action, ctx: Context, enrollment_ids: list[int], **kwargs) -> list[BulkOutcome]:
    """Applies pause/resume/unenroll to many enrollments; each succeeds or fails on its own.

    Each outcome names the enrollment's contact, except where the action answered "not
    found": that answer also hides enrollments the caller may not see, so no name leaks.
    """
    outcomes = []
    for enrollment_id in enrollment_ids:
        try:
            action(ctx, enrollment_id, **kwargs)
        except CadenzaError as exc:
            outcomes.append(BulkOutcome(enrollment_id, False, str(exc.code), exc.message))
        else:
            outcomes.append(BulkOutcome(enrollment_id, True))
    hidden = str(ErrorCode.ENROLLMENT_NOT_FOUND)
    contacts = _contacts_of([o.enrollment_id for o in outcomes if o.code != hidden], ctx)
    return [
        replace(
            o, contact_id=contacts[o.enrollment_id][0], contact_name=contacts[o.enrollment_id][1]
        )
        if o.enrollment_id in contacts
        else o
        for o in outcomes
    ]


def _contacts_of(enrollment_ids: list[int], ctx: Context) -> dict[int, tuple[int, str]]:
    if not enrollment_ids:
        return {}
    with ctx.db.read() as session:
        rows = session.execute(
            select(Enrollment.id, Contact.id, Contact.firstname, Contact.lastname, Contact.email)
            .join(Contact, Contact.id == Enrollment.contact_id)
            .where(Enrollment.id.in_(enrollment_ids))
        )
        return {
            enrollment_id: (
                contact_id,
                " ".join(p for p in (first, last) if p) or email or f"contact {contact_id}",
            )
            for enrollment_id, contact_id, first, last, email in rows
        }
