"""Tasks: a rep's queue of calls, to-dos and manual emails, completed or skipped over HTTP.

Members and viewers see their own tasks only; someone else's task answers 404 exactly
like a missing one, so task ids reveal nothing about other reps' work. Admins see and
settle everyone's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from cadenza.domain.enums import TaskKind, TaskPriority, TaskStatus
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.enrollment import tasks
from cadenza.services.enrollment.tasks import TaskView
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
) -> dict[str, Any]:
    """Earliest due first: the order a rep works through them."""
    rows = tasks.list_tasks(
        ctx,
        owner_id=owner,
        status=str(status),
        limit=limit + 1,
        after=_after(cursor),
        actor_id=user.id,
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
    """An email task's draft (as edited here, if at all) is then sent by the engine."""
    edits = tasks.TaskEdits(body.subject, body.body) if body else None
    return TaskOut.model_validate(tasks.complete_task(ctx, task_id, edits=edits, actor_id=user.id))


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
