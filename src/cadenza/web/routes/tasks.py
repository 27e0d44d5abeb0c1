"""Tasks: a rep's queue of calls, to-dos and manual emails, completed or skipped over HTTP.

Members and viewers see their own tasks only; someone else's task answers 404 exactly
like a missing one, so task ids reveal nothing about other reps' work. Admins see and
settle everyone's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt

from cadenza.domain.enums import TaskDue, TaskKind, TaskPriority, TaskSort, TaskStatus
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.task_outcomes import KEY, MAX_LABEL, TaskLog
from cadenza.services.enrollment import task_outcomes, tasks
from cadenza.services.enrollment.tasks import TaskFilter, TaskView
from cadenza.web.auth import ApiUser, ApiWriter, Ctx
from cadenza.web.errors import MAX_ID, NO_NUL, error_responses
from cadenza.web.pagination import DEFAULT_LIMIT, MAX_LIMIT

router = APIRouter(tags=["tasks"])

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class TaskCompletion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str | None = Field(
        None, pattern=NO_NUL, description="Email tasks: the subject to send instead of the draft's"
    )
    body: str | None = Field(
        None,
        pattern=NO_NUL,
        description="Email tasks: the HTML body to send instead of the draft's",
    )
    outcome: str | None = Field(
        None,
        max_length=50,
        description="Call and LinkedIn tasks: what happened (GET /task-outcomes lists them)",
        examples=["connected"],
    )
    duration_seconds: StrictInt | None = Field(
        None, description="How long the call took, 0 to 86400 seconds"
    )
    notes: str | None = Field(
        None, max_length=20_000, description="What was said or done (at most 10,000 characters)"
    )


class Reschedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    due_at: AwareDatetime = Field(description="The new due time, from now to a year ahead")


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    owner_id: int
    contact_id: int | None
    enrollment_id: int | None
    type: TaskKind
    title: str
    notes: str | None
    priority: TaskPriority
    status: TaskStatus
    due_at: datetime
    draft_subject: str | None
    draft_body: str | None
    completed_at: datetime | None
    created_at: datetime
    outcome: str | None
    duration_seconds: int | None
    outcome_notes: str | None
    logged_at: datetime | None


class TaskPage(BaseModel):
    results: list[TaskOut]
    next_cursor: str | None


def _cursor(task: TaskView) -> str:
    """Tasks come earliest due first, so a cursor must carry the due time as well as the id."""
    return f"{(task.due_at - _EPOCH) // _MICROSECOND}.{task.id}"


def _after(cursor: str | None) -> tuple[datetime, int] | None:
    if cursor in (None, ""):
        return None
    due, _, task_id = cursor.partition(".")
    try:
        if not (cursor.isascii() and due.isdigit() and task_id.isdigit()) or int(task_id) > MAX_ID:
            raise ValueError(cursor)
        return _EPOCH + int(due) * _MICROSECOND, int(task_id)
    except (ValueError, OverflowError):
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, "cursor is not one this API gave out"
        ) from None


@router.get("/tasks", response_model=TaskPage, responses=error_responses(401, 403, 422))
def list_tasks(
    user: ApiUser,
    ctx: Ctx,
    status: TaskStatus = Query(TaskStatus.OPEN, description="Open tasks unless asked otherwise"),
    owner: int | None = Query(
        None,
        ge=1,
        le=MAX_ID,
        description="A user's id; members and viewers may only ask for their own. "
        "Omitted: your own tasks, or everyone's for an admin.",
    ),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
    type: TaskKind | None = Query(None, description="call, todo, linkedin or email"),
    sequence: int | None = Query(None, ge=1, le=MAX_ID, description="A sequence's id"),
    due: TaskDue | None = Query(None, description="overdue, today or upcoming (see tz)"),
    priority: TaskPriority | None = None,
    sort: TaskSort = Query(
        TaskSort.DUE,
        description="due: earliest first (paged); local: by the due time on each contact's "
        "own clock (one page, no cursor)",
    ),
    tz: str | None = Query(
        None, max_length=64, description="The IANA zone whose day `due` reads; default UTC"
    ),
) -> dict[str, Any]:
    """Earliest due first: the order a rep works through them."""
    if sort == TaskSort.LOCAL and cursor:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "sort=local has one page: no cursor")
    where = TaskFilter(
        type=type, sequence_id=sequence, due=due, priority=priority, sort=sort, zone=tz
    )
    rows = tasks.list_tasks(
        ctx,
        owner_id=owner,
        status=str(status),
        limit=limit + (0 if sort == TaskSort.LOCAL else 1),
        after=_after(cursor),
        actor_id=user.id,
        where=where,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _cursor(rows[-1]) if more else None
    return {"results": [TaskOut.model_validate(t) for t in rows], "next_cursor": next_cursor}


@router.post(
    "/tasks/{task_id}/complete",
    response_model=TaskOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def complete_task(
    user: ApiWriter,
    ctx: Ctx,
    task_id: int = Path(ge=1, le=MAX_ID),
    body: TaskCompletion | None = Body(None),
) -> TaskOut:
    """An email task's draft (as edited here, if at all) is then sent by the engine.
    A call or LinkedIn task records its outcome, duration and notes; an outcome the
    sequence ends on unenrolls the contact."""
    edits = tasks.TaskEdits(body.subject, body.body) if body else None
    log = TaskLog(body.outcome, body.duration_seconds, body.notes) if body else None
    return TaskOut.model_validate(
        tasks.complete_task(ctx, task_id, edits=edits, log=log, actor_id=user.id)
    )


@router.post(
    "/tasks/{task_id}/reschedule",
    response_model=TaskOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def reschedule_task(
    user: ApiWriter,
    ctx: Ctx,
    body: Reschedule,
    task_id: int = Path(ge=1, le=MAX_ID),
) -> TaskOut:
    """Moves an open task (and its reminder) to a new due time."""
    return TaskOut.model_validate(
        tasks.reschedule_task(ctx, task_id, body.due_at, actor_id=user.id)
    )


@router.post(
    "/tasks/{task_id}/skip",
    response_model=TaskOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def skip_task(
    user: ApiWriter,
    ctx: Ctx,
    task_id: int = Path(ge=1, le=MAX_ID),
) -> TaskOut:
    """The sequence moves on without it; a skipped manual email is never sent."""
    return TaskOut.model_validate(tasks.skip_task(ctx, task_id, actor_id=user.id))


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=KEY.pattern, max_length=50, examples=["demo_scheduled"])
    label: str = Field(min_length=1, max_length=MAX_LABEL, pattern=NO_NUL)
    task_type: TaskKind = Field(description="call, linkedin or todo")
    ends_enrollment: StrictBool = Field(
        False, description="Unenroll the contact when logged (unless a sequence lists its own)"
    )


class OutcomeChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(None, min_length=1, max_length=MAX_LABEL, pattern=NO_NUL)
    ends_enrollment: StrictBool | None = None


class OutcomeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key: str
    label: str
    task_type: TaskKind
    ends_enrollment: bool
    custom: bool


_KEY_PATH = Path(pattern=KEY.pattern, max_length=50)


@router.get(
    "/task-outcomes", response_model=list[OutcomeOut], responses=error_responses(401, 403, 422)
)
def list_outcomes(user: ApiUser, ctx: Ctx, task_type: TaskKind | None = None) -> list[OutcomeOut]:
    """The built-in outcomes and the team's own, per task type."""
    found = task_outcomes.list_outcomes(ctx, task_type=task_type, actor_id=user.id)
    return [OutcomeOut.model_validate(o) for o in found]


@router.post(
    "/task-outcomes",
    response_model=OutcomeOut,
    status_code=201,
    responses=error_responses(401, 403, 409, 422),
)
def add_outcome(user: ApiWriter, ctx: Ctx, body: OutcomeIn) -> OutcomeOut:
    """Admins: a team's own outcome (its key is fixed once made)."""
    made = task_outcomes.add_outcome(
        ctx, body.key, body.label, body.task_type,
        ends_enrollment=body.ends_enrollment, actor_id=user.id,
    )  # fmt: skip
    return OutcomeOut.model_validate(made)


@router.patch(
    "/task-outcomes/{key}",
    response_model=OutcomeOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def change_outcome(
    user: ApiWriter, ctx: Ctx, body: OutcomeChange, key: str = _KEY_PATH
) -> OutcomeOut:
    """Admins: relabel a team outcome, or mark it as ending (built-in ones are fixed)."""
    changed = task_outcomes.update_outcome(
        ctx, key, label=body.label, ends_enrollment=body.ends_enrollment, actor_id=user.id
    )
    return OutcomeOut.model_validate(changed)


@router.delete(
    "/task-outcomes/{key}",
    status_code=204,
    responses=error_responses(401, 403, 404, 409, 422),
)
def remove_outcome(user: ApiWriter, ctx: Ctx, key: str = _KEY_PATH) -> Response:
    """Admins: tasks already logged with it keep it (and reports keep counting it)."""
    task_outcomes.remove_outcome(ctx, key, actor_id=user.id)
    return Response(status_code=204)
