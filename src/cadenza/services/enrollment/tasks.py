"""Tasks: created by task and manual-email steps, completed or skipped by reps.

A task step holds the enrollment until its task is completed (unless the step says
"continue without completing"); the next delay counts from the completion. A manual
email's task holds the rendered draft; completing it (optionally edited) hands the
email to the engine, which sends it within the mailbox's limits like any other.
Task reminders are emails too: the delivery claims send them (delivery/claims.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from cadenza.domain import templates
from cadenza.domain.enums import EnrollmentState, StepRunStatus, StepType, TaskKind, TaskStatus
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.personalization import build_context
from cadenza.domain.policy import Action, Resource
from cadenza.domain.sequence_settings import SequenceSettings
from cadenza.domain.steps import StepSpec
from cadenza.services.access import authorize, owner_filter
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.enrollment import reminders
from cadenza.services.enrollment.progress import after_step_completed, fail_step
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

    @classmethod
    def of(cls, row: Task) -> TaskView:
        return copy_row(cls, row)


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
    ctx: Context, task_id: int, *, edits: TaskEdits | None = None, actor_id: int | None = None
) -> TaskView:
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        task = _lock_open_task(session, task_id, actor_id)
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
        task.status, task.completed_at = TaskStatus.COMPLETED, now
        _move_on(session, task, now, send=task.type == TaskKind.EMAIL)
        record(session, ctx, actor_id, "task.complete", "task", task_id)
    return TaskView.of(task)


def skip_task(ctx: Context, task_id: int, actor_id: int | None = None) -> TaskView:
    """Skipping moves the sequence on; a skipped manual email is not sent."""
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        task = _lock_open_task(session, task_id, actor_id)
        task.status, task.completed_at = TaskStatus.SKIPPED, now
        _move_on(session, task, now, send=False)
        record(session, ctx, actor_id, "task.skip", "task", task_id)
    return TaskView.of(task)


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


def list_tasks(
    ctx: Context,
    *,
    owner_id: int | None = None,
    contact_id: int | None = None,
    status: str | None = TaskStatus.OPEN,
    limit: int = 100,
    after: tuple[datetime, int] | None = None,
    actor_id: int | None = None,
) -> list[TaskView]:
    """Earliest due first; `after` = (due_at, id) of the last task seen (keyset paging).

    A member (or viewer) acting sees only their own tasks: asking for someone else's
    is refused, not silently narrowed.
    """
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
    query = select(Task).order_by(Task.due_at, Task.id).limit(limit)
    if owner_id is not None:
        query = query.where(Task.owner_id == owner_id)
    if contact_id is not None:
        query = query.where(Task.contact_id == contact_id)
    if status is not None:
        query = query.where(Task.status == status)
    if after is not None:
        due, task_id = after
        query = query.where(or_(Task.due_at > due, and_(Task.due_at == due, Task.id > task_id)))
    with ctx.db.read() as session:
        return [TaskView.of(row) for row in session.scalars(query)]
