"""The signed-in user's task queue: overdue, due today and upcoming, filtered; "Start
tasks" works through them one after another (complete, skip, reschedule, complete and
next, each with a keyboard shortcut); a manual email opens its draft to edit and send.

The queue's filters travel as the query string `q` of every page and form of the
queue, so "next" means the next task of the same filtered queue. Every action is a
plain form (the page works without JavaScript); static/task-queue.js only adds keys.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse

from cadenza.domain.contact_fields import parse_timezone
from cadenza.domain.enums import TaskDue, TaskKind, TaskPriority, TaskSort, TaskStatus
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.task_outcomes import MAX_NOTES, TaskLog
from cadenza.services.context import Context
from cadenza.services.enrollment import task_outcomes, task_queue, tasks
from cadenza.services.enrollment.tasks import TaskFilter, TaskView
from cadenza.services.sequences.catalog import list_sequences
from cadenza.web.auth import Ctx
from cadenza.web.errors import MAX_ID
from cadenza.web.ui.rendering import render, viewer_zone
from cadenza.web.ui.session import PageUser, PageWriter, check_csrf
from cadenza.web.ui.templates_library import snippet_choices

router = APIRouter(dependencies=[Depends(check_csrf)])

FILTERS = ("type", "sequence", "due", "priority", "sort")
RESCHEDULE = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}


def _filter(request: Request, q: str) -> tuple[TaskFilter, str]:
    """The queue's filters from `q` (as a query string), and `q` again, tidied: unknown
    or malformed values are dropped rather than refused, a stale link still opens."""
    raw = dict(parse_qsl(q[:500]))
    allowed = {"type": TaskKind, "due": TaskDue, "priority": TaskPriority, "sort": TaskSort}
    kept: dict[str, str] = {}
    for name, vocabulary in allowed.items():
        if raw.get(name) in {v.value for v in vocabulary}:
            kept[name] = raw[name]
    if raw.get("sequence", "").isdigit() and 0 < int(raw["sequence"]) <= MAX_ID:
        kept["sequence"] = raw["sequence"]
    where = TaskFilter(
        type=kept.get("type"),
        sequence_id=int(kept["sequence"]) if "sequence" in kept else None,
        due=kept.get("due"),
        priority=kept.get("priority"),
        sort=kept.get("sort", TaskSort.DUE),
        zone=viewer_zone(request),
    )
    return where, urlencode(kept)


def _query_of(request: Request) -> str:
    return urlencode([(k, v) for k, v in request.query_params.items() if k in FILTERS])


@router.get("/tasks")
def task_queue_page(request: Request, user: PageUser, ctx: Ctx, done: bool = False):
    """Grouped by the viewer's own day: "today" is today where the rep sits."""
    where, q = _filter(request, _query_of(request))
    start, end = tasks.day_bounds(ctx, viewer_zone(request))
    groups: dict[str, list[TaskView]] = {"Overdue": [], "Due today": [], "Upcoming": []}
    for task in tasks.list_tasks(
        ctx, owner_id=user.id, status=TaskStatus.OPEN, limit=200, actor_id=user.id, where=where
    ):
        if task.due_at < start:
            groups["Overdue"].append(task)
        elif task.due_at < end:
            groups["Due today"].append(task)
        else:
            groups["Upcoming"].append(task)
    return render(
        request,
        "tasks/queue.html",
        groups=groups,
        q=q,
        chosen=dict(parse_qsl(q)),
        sequences=list_sequences(ctx, limit=500),
        done=done,
    )


@router.get("/tasks/start")
def start_tasks(request: Request, user: PageUser, ctx: Ctx):
    """ "Start tasks": the first task of the (filtered) queue, or back when none is left."""
    where, q = _filter(request, _query_of(request))
    return _next(ctx, user.id, where, q)


def _next(ctx, user_id: int, where: TaskFilter, q: str, skip: int | None = None):
    next_id = task_queue.next_task_id(ctx, actor_id=user_id, where=where, skip=skip)
    if next_id is None:
        return RedirectResponse("/tasks?" + urlencode({**dict(parse_qsl(q)), "done": "1"}), 303)
    return RedirectResponse(f"/tasks/{next_id}" + (f"?q={_escape(q)}" if q else ""), 303)


def _escape(q: str) -> str:
    return urlencode({"q": q})[2:]


@router.get("/tasks/outcomes")
def outcomes_page(request: Request, user: PageUser, ctx: Ctx):
    """The outcomes tasks are logged with; admins add and remove the team's own."""
    found = task_outcomes.list_outcomes(ctx, actor_id=user.id)
    return render(request, "tasks/outcomes.html", outcomes=found, error=None)


@router.post("/tasks/outcomes")
def add_outcome(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    key: str = Form("", max_length=100),
    label: str = Form("", max_length=200),
    task_type: str = Form("", max_length=20),
    ends_enrollment: str | None = Form(None, max_length=10),
):
    try:
        task_outcomes.add_outcome(
            ctx, key.strip(), label, task_type,
            ends_enrollment=ends_enrollment == "on", actor_id=user.id,
        )  # fmt: skip
    except CadenzaError as exc:
        if exc.code not in (ErrorCode.VALIDATION_ERROR, ErrorCode.CONFLICT):
            raise
        found = task_outcomes.list_outcomes(ctx, actor_id=user.id)
        return render(
            request, "tasks/outcomes.html", status_code=exc.http_status, outcomes=found,
            error=exc.message,
        )  # fmt: skip
    return RedirectResponse("/tasks/outcomes", status_code=303)


@router.post("/tasks/outcomes/{key}/delete")
def remove_outcome(user: PageWriter, ctx: Ctx, key: str = Path(pattern=r"^[a-z][a-z0-9_]{0,49}$")):
    task_outcomes.remove_outcome(ctx, key, actor_id=user.id)
    return RedirectResponse("/tasks/outcomes", status_code=303)


@router.get("/tasks/{task_id}")
def task_detail(
    request: Request,
    user: PageUser,
    ctx: Ctx,
    task_id: int = Path(ge=1, le=MAX_ID),
    q: str = Query("", max_length=500),
):
    """One task of the queue with all the rep needs to do it."""
    _, q = _filter(request, q)
    item = task_queue.queue_item(ctx, task_id, actor_id=user.id)
    return _work_page(request, ctx, user.id, item, q)


def _work_page(
    request: Request, ctx: Context, user_id: int, item, q: str, *,
    error: str | None = None, status: int = 200,
):  # fmt: skip
    return render(
        request,
        "tasks/detail.html",
        status_code=status,
        item=item,
        task=item.task,
        contact=item.contact,
        q=q,
        error=error,
        max_notes=MAX_NOTES,
        snippets=snippet_choices(ctx, user_id),
    )


def _duration(text: str | None) -> int | None:
    """ "4:05" (minutes:seconds) or "4" (minutes); blank: none. Anything else is refused."""
    text = (text or "").strip()
    if not text:
        return None
    minutes, _, seconds = text.partition(":")
    if (
        not minutes.isascii()
        or not minutes.isdigit()
        or (seconds and not (seconds.isascii() and seconds.isdigit()))
        or len(text) > 8
    ):
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            "duration must be minutes, or minutes:seconds (e.g. 4:05)",
            {"field": "duration_seconds"},
        )
    return int(minutes) * 60 + int(seconds or 0)


@router.post("/tasks/{task_id}/complete")
def complete(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    task_id: int = Path(ge=1, le=MAX_ID),
    subject: str | None = Form(None),
    body: str | None = Form(None),
    outcome: str | None = Form(None, max_length=50),
    duration: str | None = Form(None, max_length=20),
    notes: str | None = Form(None, max_length=MAX_NOTES * 2),
    then: str = Form("list", max_length=10),
    q: str = Form("", max_length=500),
):
    where, q = _filter(request, q)
    task = tasks.get_task(ctx, task_id, actor_id=user.id)
    edits = tasks.TaskEdits(subject=subject, body=body) if task.type == TaskKind.EMAIL else None
    try:
        log = TaskLog(outcome or None, _duration(duration), notes)
        tasks.complete_task(ctx, task_id, edits=edits, log=log, actor_id=user.id)
    except CadenzaError as exc:
        if exc.code not in (ErrorCode.VALIDATION_ERROR, ErrorCode.UNKNOWN_OUTCOME):
            raise
        item = task_queue.queue_item(ctx, task_id, actor_id=user.id)
        return _work_page(request, ctx, user.id, item, q, error=exc.message, status=422)
    return _after(ctx, user.id, where, q, then)


def _after(ctx, user_id: int, where: TaskFilter, q: str, then: str):
    if then == "next":
        return _next(ctx, user_id, where, q)
    return RedirectResponse("/tasks" + (f"?{q}" if q else ""), status_code=303)


@router.post("/tasks/{task_id}/skip")
def skip(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    task_id: int = Path(ge=1, le=MAX_ID),
    then: str = Form("list", max_length=10),
    q: str = Form("", max_length=500),
):
    where, q = _filter(request, q)
    tasks.skip_task(ctx, task_id, actor_id=user.id)
    return _after(ctx, user.id, where, q, then)


@router.post("/tasks/{task_id}/reschedule")
def reschedule(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    task_id: int = Path(ge=1, le=MAX_ID),
    by: str = Form("day", max_length=10),
    at: str = Form("", max_length=20),
    then: str = Form("list", max_length=10),
    q: str = Form("", max_length=500),
):
    """Later by an hour, a day or a week, or `at` a local time (the viewer's zone).
    In the queue, the next task comes up (this one stays in the list for later)."""
    where, q = _filter(request, q)
    task = tasks.get_task(ctx, task_id, actor_id=user.id)
    try:
        if at.strip():
            try:
                local = datetime.fromisoformat(at.strip())
            except ValueError:
                raise CadenzaError(
                    ErrorCode.VALIDATION_ERROR, "the new time must be a date and a time"
                ) from None
            due = local.replace(tzinfo=parse_timezone(viewer_zone(request)))
        elif by in RESCHEDULE:
            due = max(task.due_at, ctx.clock.now()) + RESCHEDULE[by]
        else:
            raise CadenzaError(ErrorCode.VALIDATION_ERROR, "reschedule by hour, day or week")
        tasks.reschedule_task(ctx, task_id, due, actor_id=user.id)
    except CadenzaError as exc:
        if exc.code != ErrorCode.VALIDATION_ERROR:
            raise
        item = task_queue.queue_item(ctx, task_id, actor_id=user.id)
        return _work_page(request, ctx, user.id, item, q, error=exc.message, status=422)
    return (
        _after(ctx, user.id, where, q, then)
        if then != "next"
        else _next(ctx, user.id, where, q, skip=task_id)
    )
