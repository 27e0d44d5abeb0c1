"""Tasks: created by task and manual-email steps, completed or skipped by reps.

A task step holds the enrollment until its task is completed (unless the step says
"continue without completing"); the next delay counts from the completion. A manual
email's task holds the rendered draft; completing it (optionally edited) hands the
email to the engine, which sends it within the mailbox's limits like any other.
Task reminders are emails too: the delivery claims send them (delivery/claims.py).
A completed task may carry what was logged (outcome, duration, notes: docs/tasks.md);
an outcome the sequence ends on unenrolls the contact through `control.end_enrollment`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from cadenza.domain import task_outcomes, templates
from cadenza.domain.contact_fields import parse_timezone
from cadenza.domain.enums import (
    LIVE_ENROLLMENT_STATES,
    CallOutcome,
    EnrollmentState,
    StepRunStatus,
    StepType,
    TaskDue,
    TaskKind,
    TaskPriority,
    TaskSort,
    TaskStatus,
    UnenrollReason,
)
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.personalization import build_context
from cadenza.domain.policy import Action, Resource
from cadenza.domain.sequence_settings import SequenceSettings
from cadenza.domain.steps import StepSpec
from cadenza.domain.task_outcomes import TaskLog
from cadenza.services.access import authorize, owner_filter
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.counters import deltas as counters
from cadenza.services.counters.deltas import StepOf, step_of_run
from cadenza.services.enrollment import reminders
from cadenza.services.enrollment.control import end_enrollment
from cadenza.services.enrollment.progress import after_step_completed, fail_step
from cadenza.services.enrollment.task_outcomes import known_outcomes
from cadenza.services.lookup import fetch
from cadenza.services.read_models import copy_row
from cadenza.services.sequences.personalization import (
    contact_values,
    finish_text,
    render_step,
    sender_values,
)
from cadenza.store.models import Contact, Enrollment, Mailbox, StepRun, Task, User

PENDING = StepRunStatus.PENDING


@dataclass(frozen=True)
class TaskView:
    """A task as the task lists, the API and the CLI show it."""

    id: int
    owner_id: int
    contact_id: int | None
    enrollment_id: int | None
    step_run_id: int | None
    type: str
    title: str
    notes: str | None
    priority: str
    status: str
    due_at: datetime
    draft_subject: str | None
    draft_body: str | None
    remind_at: datetime | None
    reminded_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    outcome: str | None = None
    duration_seconds: int | None = None
    outcome_notes: str | None = None
    logged_at: datetime | None = None

    @classmethod
    def of(cls, row: Task) -> TaskView:
        return copy_row(cls, row)

    @property
    def logged(self) -> str | None:
        """The outcome and duration as a timeline shows them."""
        return task_outcomes.describe(self.outcome, self.duration_seconds)


def create_due_tasks(ctx: Context, limit: int = 100) -> int:
    """Turns due task and manual-email step runs into tasks, in one transaction."""
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        rows = list(
            session.execute(
                select(StepRun, Enrollment)
                .join(Enrollment, StepRun.enrollment_id == Enrollment.id)
                .where(
                    StepRun.status == PENDING,
                    StepRun.due_at <= now,
                    StepRun.step_type.in_((str(StepType.TASK), str(StepType.MANUAL_EMAIL))),
                    StepRun.send_ready.is_(False),
                )
                .order_by(StepRun.due_at)
                .limit(limit)
                .with_for_update(of=StepRun, skip_locked=True)
            )
        )
        for run, enrollment in rows:
            _create_task(session, ctx, run, enrollment, now)
        return len(rows)


def _create_task(session: Session, ctx: Context, run: StepRun, enrollment: Enrollment, now) -> None:
    spec = StepSpec.from_dict(enrollment.steps_snapshot[run.step_position - 1])
    contact = session.get(Contact, enrollment.contact_id)
    user = session.get(User, enrollment.enrolled_by_id)
    mailbox = session.get(Mailbox, enrollment.mailbox_id)
    settings = SequenceSettings.from_dict(enrollment.settings_snapshot)
    try:
        context = build_context(
            contact_values(contact), sender_values(user, mailbox), enrollment.token_values or {}
        )
        task = Task(
            owner_id=enrollment.enrolled_by_id,
            contact_id=contact.id,
            enrollment_id=enrollment.id,
            step_run_id=run.id,
            priority=str(spec.task_priority),
            status=TaskStatus.OPEN,
            due_at=run.due_at,
            remind_at=reminders.remind_at(user, run.due_at, now, wanted=settings.task_reminders),
            created_at=now,
        )
        if spec.type is StepType.MANUAL_EMAIL:
            task.type = TaskKind.EMAIL
            task.draft_subject, task.draft_body = render_step(
                enrollment, contact, user, mailbox, spec
            )
            task.title = f"Send email: {task.draft_subject}"
        else:
            task.type = str(spec.task_type)
            title = templates.render_subject(spec.task_title or str(spec.task_type), context)
            task.title = finish_text(title, user)
            task.notes = (
                finish_text(templates.render(spec.task_notes, context, html=False), user)
                if spec.task_notes
                else None
            )
    except CadenzaError as exc:
        fail_step(session, ctx, run, enrollment, f"could not render ({exc.code}): {exc.message}")
        return
    session.add(task)
    counters.task_moved(session, StepOf.of(run, enrollment.sequence_id), None, TaskStatus.OPEN)
    if spec.type is StepType.TASK and spec.continue_without_completing:
        run.status, run.completed_at = StepRunStatus.DONE, now
        after_step_completed(session, enrollment, run.step_position, now)
    else:
        run.status = StepRunStatus.WAITING_TASK


@dataclass(frozen=True)
class TaskEdits:
    subject: str | None = None
    body: str | None = None


def _not_found(task_id: int) -> CadenzaError:
    return CadenzaError(ErrorCode.NOT_FOUND, f"task {task_id} does not exist", {"id": task_id})


def _lock_open_task(session: Session, task_id: int, actor_id: int | None) -> Task:
    """Someone else's task answers as a missing one: a member settles only their own."""
    task = fetch(session, Task, task_id, for_update=True)
    authorize(
        session, actor_id, Resource.TASK, Action.UPDATE, [task.owner_id],
        hidden_as=_not_found(task_id),
    )  # fmt: skip
    if task.status != TaskStatus.OPEN:
        raise CadenzaError(
            ErrorCode.INVALID_STATE,
            f"task {task_id} is already {task.status}",
            {"status": task.status},
        )
    return task


def complete_task(
    ctx: Context,
    task_id: int,
    *,
    edits: TaskEdits | None = None,
    log: TaskLog | None = None,
    actor_id: int | None = None,
) -> TaskView:
    """`log`: the outcome, duration and notes to record with it (refused as a whole when
    any part is wrong, before anything is written)."""
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        task = _lock_open_task(session, task_id, actor_id)
        outcomes = known_outcomes(session)
        if log is not None and not log.empty:
            log = task_outcomes.check_log(log, task.type, outcomes)
            task.outcome, task.duration_seconds = log.outcome, log.duration_seconds
            task.outcome_notes, task.logged_at = log.notes, now
        if edits and (edits.subject is not None or edits.body is not None):
            if task.type != TaskKind.EMAIL:
                raise CadenzaError(
                    ErrorCode.VALIDATION_ERROR, "only an email task has a draft to edit"
                )
            if edits.subject is not None:
                task.draft_subject = " ".join(edits.subject.split())
            if edits.body is not None:
                # the draft is the final email, not a template: Jinja tags in it are text,
                # so the whole of it is cleaned (sanitize_html would keep tags verbatim)
                task.draft_body = templates.clean_html(edits.body)
        if task.type == TaskKind.EMAIL and not (task.draft_subject and task.draft_body):
            raise CadenzaError(ErrorCode.VALIDATION_ERROR, "the email needs a subject and a body")
        _task_moved(session, task, TaskStatus.COMPLETED)
        task.status, task.completed_at = TaskStatus.COMPLETED, now
        session.flush()
        if not _end_on_outcome(session, ctx, task, outcomes, actor_id):
            _move_on(session, task, now, send=task.type == TaskKind.EMAIL)
        record(
            session, ctx, actor_id, "task.complete", "task", task_id,
            {"outcome": task.outcome} if task.outcome else None,
        )  # fmt: skip
    return TaskView.of(task)


def _end_on_outcome(
    session: Session,
    ctx: Context,
    task: Task,
    outcomes: list[task_outcomes.OutcomeDef],
    actor_id: int | None,
) -> bool:
    """Unenrolls when the sequence ends on this outcome (the one path, with a reason)."""
    if task.outcome is None or task.enrollment_id is None:
        return False
    enrollment = session.get(Enrollment, task.enrollment_id, with_for_update=True)
    if enrollment is None or enrollment.state not in LIVE_ENROLLMENT_STATES:
        return False
    settings = SequenceSettings.from_dict(enrollment.settings_snapshot)
    if not task_outcomes.ends_enrollment(task.outcome, settings.unenroll_on_outcomes, outcomes):
        return False
    reason = (
        UnenrollReason.MEETING_BOOKED
        if task.outcome == CallOutcome.MEETING_BOOKED
        else UnenrollReason.TASK_OUTCOME
    )
    detail = f"{task.type} task {task.id} logged as {task.outcome}"
    end_enrollment(session, ctx, enrollment, reason, detail, actor_id=actor_id)
    return True


# How far ahead a task may be moved: a year, like a step's delay.
MAX_RESCHEDULE = timedelta(days=366)


def reschedule_task(
    ctx: Context, task_id: int, due_at: datetime, *, actor_id: int | None = None
) -> TaskView:
    """Moves an open task's due time (its reminder moves with it); the sequence keeps
    waiting for it as before."""
    now = ctx.clock.now()
    if due_at.tzinfo is None:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "due_at needs a time zone or offset")
    if due_at < now - timedelta(minutes=1) or due_at > now + MAX_RESCHEDULE:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            "due_at must be from now to a year ahead",
            {"field": "due_at"},
        )
    with ctx.db.transaction() as session:
        task = _lock_open_task(session, task_id, actor_id)
        if task.remind_at is not None:  # its sequence wants reminders: the owner's timing
            owner = session.get_one(User, task.owner_id)
            task.remind_at = reminders.remind_at(owner, due_at, now, wanted=True)
            task.reminded_at = None
        task.due_at = due_at
        record(
            session, ctx, actor_id, "task.reschedule", "task", task_id,
            {"due_at": due_at.isoformat()},
        )  # fmt: skip
    return TaskView.of(task)


def skip_task(ctx: Context, task_id: int, actor_id: int | None = None) -> TaskView:
    """Skipping moves the sequence on; a skipped manual email is not sent."""
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        task = _lock_open_task(session, task_id, actor_id)
        _task_moved(session, task, TaskStatus.SKIPPED)
        task.status, task.completed_at = TaskStatus.SKIPPED, now
        _move_on(session, task, now, send=False)
        record(session, ctx, actor_id, "task.skip", "task", task_id)
    return TaskView.of(task)


def _task_moved(session: Session, task: Task, status: TaskStatus) -> None:
    """A step's task counts in its step's figures (services/counters)."""
    if task.step_run_id is not None:
        counters.task_moved(session, step_of_run(session, task.step_run_id), task.status, status)


def _move_on(session: Session, task: Task, now: datetime, *, send: bool) -> None:
    if task.step_run_id is None:
        return
    run = session.get(StepRun, task.step_run_id, with_for_update=True)
    if run.status != StepRunStatus.WAITING_TASK:
        return  # the step continued without it, or the enrollment ended
    enrollment = session.get(Enrollment, run.enrollment_id, with_for_update=True)
    if send:
        run.send_ready, run.status, run.due_at = True, PENDING, now
        if enrollment.state == EnrollmentState.PAUSED:
            run.status = StepRunStatus.PAUSED
        return
    run.status, run.completed_at = StepRunStatus.DONE, now
    after_step_completed(session, enrollment, run.step_position, now)


def get_task(ctx: Context, task_id: int, *, actor_id: int | None = None) -> TaskView:
    with ctx.db.read() as session:
        task = fetch(session, Task, task_id)
        authorize(
            session, actor_id, Resource.TASK, Action.READ, [task.owner_id],
            hidden_as=_not_found(task_id),
        )  # fmt: skip
        return TaskView.of(task)


@dataclass(frozen=True)
class TaskFilter:
    """The queue's filters; `due` is read in `zone` (the viewer's own day)."""

    type: str | None = None
    sequence_id: int | None = None
    due: str | None = None
    priority: str | None = None
    sort: str = TaskSort.DUE
    zone: str | None = None

    def check(self) -> None:
        for name, value, allowed in (
            ("type", self.type, TaskKind),
            ("due", self.due, TaskDue),
            ("priority", self.priority, TaskPriority),
            ("sort", self.sort, TaskSort),
        ):
            if value is not None and value not in {a.value for a in allowed}:
                raise CadenzaError(
                    ErrorCode.VALIDATION_ERROR,
                    f"{name} must be one of {', '.join(a.value for a in allowed)}",
                    {"field": name},
                )


def list_tasks(
    ctx: Context,
    *,
    owner_id: int | None = None,
    contact_id: int | None = None,
    status: str | None = TaskStatus.OPEN,
    limit: int = 100,
    after: tuple[datetime, int] | None = None,
    actor_id: int | None = None,
    where: TaskFilter | None = None,
) -> list[TaskView]:
    """Earliest due first; `after` = (due_at, id) of the last task seen (keyset paging).
    With `sort=local` they come by the due time on each contact's own clock instead
    (one page of at most `limit`: no keyset over local times).

    A member (or viewer) acting sees only their own tasks: asking for someone else's
    is refused, not silently narrowed.
    """
    where = where or TaskFilter()
    where.check()
    if status is not None and status not in {s.value for s in TaskStatus}:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"status must be one of {', '.join(s.value for s in TaskStatus)}",
        )
    if actor_id is not None:
        with ctx.db.read() as session:
            own = owner_filter(session, actor_id, Resource.TASK)
        if own is not None:
            if owner_id not in (None, own):
                raise CadenzaError(
                    ErrorCode.PERMISSION_DENIED, "only admins see other users' tasks"
                )
            owner_id = own
    query = (
        select(Task, Contact.timezone, Enrollment.timezone)
        .outerjoin(Contact, Contact.id == Task.contact_id)
        .outerjoin(Enrollment, Enrollment.id == Task.enrollment_id)
        .order_by(Task.due_at, Task.id)
        .limit(limit)
    )
    if owner_id is not None:
        query = query.where(Task.owner_id == owner_id)
    if contact_id is not None:
        query = query.where(Task.contact_id == contact_id)
    if status is not None:
        query = query.where(Task.status == status)
    if where.type is not None:
        query = query.where(Task.type == where.type)
    if where.priority is not None:
        query = query.where(Task.priority == where.priority)
    if where.sequence_id is not None:
        query = query.where(Enrollment.sequence_id == where.sequence_id)
    if where.due is not None:
        start, end = day_bounds(ctx, where.zone)
        query = query.where(
            {
                TaskDue.OVERDUE: Task.due_at < start,
                TaskDue.TODAY: and_(Task.due_at >= start, Task.due_at < end),
                TaskDue.UPCOMING: Task.due_at >= end,
            }[TaskDue(where.due)]
        )
    if after is not None:
        due, task_id = after
        query = query.where(or_(Task.due_at > due, and_(Task.due_at == due, Task.id > task_id)))
    with ctx.db.read() as session:
        found = session.execute(query)
        rows = [(TaskView.of(task), c_zone or e_zone) for task, c_zone, e_zone in found]
    if where.sort == TaskSort.LOCAL:
        fallback = where.zone or ctx.settings.default_timezone
        rows.sort(key=lambda item: (_wall_clock(item[0].due_at, item[1] or fallback), item[0].id))
    return [task for task, _ in rows]


def day_bounds(ctx: Context, zone: str | None) -> tuple[datetime, datetime]:
    """Today in `zone` (the viewer's), as UTC moments [start, end)."""
    tz = parse_timezone(zone or ctx.settings.default_timezone)
    now = ctx.clock.now().astimezone(tz)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def _wall_clock(moment: datetime, zone: str) -> datetime:
    try:
        tz = ZoneInfo(zone)
    except (ValueError, KeyError):
        tz = ZoneInfo("UTC")
    return moment.astimezone(tz).replace(tzinfo=None)
