"""`cadenza tasks …`: the rep's task queue, and the outcomes tasks are logged with."""

from __future__ import annotations

from datetime import datetime

import typer
from rich.table import Table

from cadenza.cli.common import (
    AS_USER_HELP,
    acting_user,
    console,
    fails_cleanly,
    fmt_time,
    make_context,
)
from cadenza.domain.contact_fields import parse_timezone
from cadenza.domain.enums import TaskKind, TaskSort, TaskStatus
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.task_outcomes import TaskLog
from cadenza.services.enrollment import task_outcomes
from cadenza.services.enrollment.tasks import (
    TaskEdits,
    TaskFilter,
    complete_task,
    list_tasks,
    reschedule_task,
    skip_task,
)

app = typer.Typer(help="Tasks created by sequences.", no_args_is_help=True)
outcomes_app = typer.Typer(help="The outcomes tasks are logged with.", no_args_is_help=True)
app.add_typer(outcomes_app, name="outcomes")


@app.command("list")
@fails_cleanly
def list_command(
    status: str = typer.Option(
        TaskStatus.OPEN.value, help="open, completed, skipped or cancelled."
    ),
    everyone: bool = typer.Option(False, "--all", help="Everyone's tasks, not only yours."),
    task_type: str = typer.Option(None, "--type", help="call, todo, linkedin or email."),
    sequence: int = typer.Option(None, help="Only tasks of this sequence (its id)."),
    due: str = typer.Option(None, help="overdue, today or upcoming (your own day)."),
    priority: str = typer.Option(None, help="none, low, medium or high."),
    sort: str = typer.Option(
        TaskSort.DUE.value, help="due, or local: by the due time on each contact's clock."
    ),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Your tasks, earliest due first."""
    ctx = make_context()
    user = acting_user(ctx, as_user)
    zone = user.timezone or ctx.settings.default_timezone
    tz = parse_timezone(zone)
    table = Table("id", "type", "title", "priority", f"due ({tz.key})", "status", "outcome")
    owner = None if everyone else user.id
    where = TaskFilter(
        type=task_type, sequence_id=sequence, due=due, priority=priority, sort=sort, zone=zone
    )
    for task in list_tasks(ctx, owner_id=owner, status=status, actor_id=user.id, where=where):
        table.add_row(
            str(task.id),
            task.type,
            task.title,
            task.priority,
            fmt_time(task.due_at, tz),
            task.status,
            task.logged or "",
        )
    console.print(table)


@app.command("complete")
@fails_cleanly
def complete_command(
    task_id: int,
    subject: str = typer.Option(None, help="Email tasks: the edited subject to send."),
    body: str = typer.Option(None, help="Email tasks: the edited HTML body to send."),
    outcome: str = typer.Option(
        None, help="What happened (see `cadenza tasks outcomes list`), e.g. connected."
    ),
    duration: int = typer.Option(None, help="How long the call took, in seconds."),
    notes: str = typer.Option(None, help="Notes on the call or touch."),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Complete a task; an email task's draft is sent, a call's outcome is logged."""
    ctx = make_context()
    actor = acting_user(ctx, as_user)
    task = complete_task(
        ctx,
        task_id,
        edits=TaskEdits(subject, body),
        log=TaskLog(outcome, duration, notes),
        actor_id=actor.id,
    )
    console.print(
        f"task {task.id} completed"
        + (" (email queued)" if task.type == TaskKind.EMAIL else "")
        + (f": {task.logged}" if task.logged else ""),
        highlight=False,
    )


@app.command("skip")
@fails_cleanly
def skip_command(
    task_id: int, as_user: str = typer.Option(None, "--as", help=AS_USER_HELP)
) -> None:
    """Skip a task: the sequence moves on (a skipped email is not sent)."""
    ctx = make_context()
    task = skip_task(ctx, task_id, actor_id=acting_user(ctx, as_user).id)
    console.print(f"task {task.id} skipped")


@app.command("reschedule")
@fails_cleanly
def reschedule_command(
    task_id: int,
    at: str = typer.Option(..., help="The new due time, ISO 8601 with an offset."),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Move an open task to a new due time (from now to a year ahead)."""
    ctx = make_context()
    actor = acting_user(ctx, as_user)
    try:
        due = datetime.fromisoformat(at)
    except ValueError:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, f"--at {at!r} is not an ISO 8601 time"
        ) from None
    task = reschedule_task(ctx, task_id, due, actor_id=actor.id)
    tz = parse_timezone(actor.timezone or ctx.settings.default_timezone)
    console.print(f"task {task.id} now due {fmt_time(task.due_at, tz)}", highlight=False)


@outcomes_app.command("list")
@fails_cleanly
def outcomes_list(
    task_type: str = typer.Option(None, "--type", help="call, linkedin or todo."),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """The built-in outcomes and the team's own."""
    ctx = make_context()
    actor = acting_user(ctx, as_user)
    table = Table("type", "key", "label", "ends enrollment", "custom")
    for o in task_outcomes.list_outcomes(ctx, task_type=task_type, actor_id=actor.id):
        table.add_row(
            o.task_type, o.key, o.label, "yes" if o.ends_enrollment else "no",
            "yes" if o.custom else "no",
        )  # fmt: skip
    console.print(table)


@outcomes_app.command("add")
@fails_cleanly
def outcomes_add(
    key: str,
    label: str,
    task_type: str = typer.Option(..., "--type", help="call, linkedin or todo."),
    ends: bool = typer.Option(False, "--ends", help="Logging it unenrolls the contact."),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Admins: add a team outcome."""
    ctx = make_context()
    actor = acting_user(ctx, as_user)
    made = task_outcomes.add_outcome(
        ctx, key, label, task_type, ends_enrollment=ends, actor_id=actor.id
    )
    console.print(f"outcome {made.key} added for {made.task_type} tasks", highlight=False)


@outcomes_app.command("remove")
@fails_cleanly
def outcomes_remove(key: str, as_user: str = typer.Option(None, "--as", help=AS_USER_HELP)) -> None:
    """Admins: remove a team outcome (tasks logged with it keep it)."""
    ctx = make_context()
    task_outcomes.remove_outcome(ctx, key, actor_id=acting_user(ctx, as_user).id)
    console.print(f"outcome {key} removed", highlight=False)
