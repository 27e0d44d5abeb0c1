"""The signed-in user's task queue: overdue, due today and upcoming; complete or skip;
a manual email opens its draft to edit and send."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import RedirectResponse

from cadenza.domain.contact_fields import parse_timezone
from cadenza.domain.enums import TaskKind, TaskStatus
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.crm.contacts import get_contact
from cadenza.services.enrollment import tasks
from cadenza.services.enrollment.tasks import TaskView
from cadenza.web.auth import Ctx
from cadenza.web.errors import MAX_ID
from cadenza.web.ui.rendering import render, viewer_zone
from cadenza.web.ui.session import PageUser, PageWriter, check_csrf
from cadenza.web.ui.templates_library import snippet_choices

router = APIRouter(dependencies=[Depends(check_csrf)])


@router.get("/tasks")
def task_queue(
    request: Request,
    user: PageUser,
    ctx: Ctx,
):
    """Grouped by the viewer's own day: "today" is today where the rep sits."""
    tz = parse_timezone(viewer_zone(request))
    now = ctx.clock.now().astimezone(tz)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(days=1)
    groups: dict[str, list[TaskView]] = {"Overdue": [], "Due today": [], "Upcoming": []}
    for task in tasks.list_tasks(
        ctx, owner_id=user.id, status=TaskStatus.OPEN, limit=200, actor_id=user.id
    ):
        if task.due_at < start:
            groups["Overdue"].append(task)
        elif task.due_at < end:
            groups["Due today"].append(task)
        else:
            groups["Upcoming"].append(task)
    return render(request, "tasks/queue.html", groups=groups)


@router.get("/tasks/{task_id}")
def task_detail(
    request: Request,
    user: PageUser,
    ctx: Ctx,
    task_id: int = Path(ge=1, le=MAX_ID),
):
    task = tasks.get_task(ctx, task_id, actor_id=user.id)
    contact = get_contact(ctx, task.contact_id) if task.contact_id else None
    return render(
        request, "tasks/detail.html", task=task, contact=contact, error=None,
        snippets=snippet_choices(ctx, user.id),
    )  # fmt: skip


@router.post("/tasks/{task_id}/complete")
def complete(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    task_id: int = Path(ge=1, le=MAX_ID),
    subject: str | None = Form(None),
    body: str | None = Form(None),
):
    task = tasks.get_task(ctx, task_id, actor_id=user.id)
    edits = tasks.TaskEdits(subject=subject, body=body) if task.type == TaskKind.EMAIL else None
    try:
        tasks.complete_task(ctx, task_id, edits=edits, actor_id=user.id)
    except CadenzaError as exc:
        if exc.code != ErrorCode.VALIDATION_ERROR:
            raise
        contact = get_contact(ctx, task.contact_id) if task.contact_id else None
        return render(
            request, "tasks/detail.html", status_code=422, task=task, contact=contact,
            error=exc.message, snippets=snippet_choices(ctx, user.id),
        )  # fmt: skip
    return RedirectResponse("/tasks", status_code=303)


@router.post("/tasks/{task_id}/skip")
def skip(
    user: PageWriter,
    ctx: Ctx,
    task_id: int = Path(ge=1, le=MAX_ID),
):
    tasks.skip_task(ctx, task_id, actor_id=user.id)
    return RedirectResponse("/tasks", status_code=303)
