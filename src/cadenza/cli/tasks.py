"""`cadenza tasks …`: the rep's task queue."""

from __future__ import annotations

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
from cadenza.domain.enums import TaskKind, TaskStatus
from cadenza.services.enrollment.tasks import TaskEdits, complete_task, list_tasks, skip_task

app = typer.Typer(help="Tasks created by sequences.", no_args_is_help=True)


@app.command("list")
@fails_cleanly
def list_command(
    status: str = typer.Option(
        TaskStatus.OPEN.value, help="open, completed, skipped or cancelled."
    ),
    everyone: bool = typer.Option(False, "--all", help="Everyone's tasks, not only yours."),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Your tasks, earliest due first."""
    ctx = make_context()
    user = acting_user(ctx, as_user)
    tz = parse_timezone(user.timezone or ctx.settings.default_timezone)
    table = Table("id", "type", "title", "priority", f"due ({tz.key})", "status")
    owner = None if everyone else user.id
    for task in list_tasks(ctx, owner_id=owner, status=status):
        table.add_row(
            str(task.id),
            task.type,
            task.title,
            task.priority,
            fmt_time(task.due_at, tz),
            task.status,
        )
    console.print(table)


@app.command("complete")
@fails_cleanly
def complete_command(
    task_id: int,
    subject: str = typer.Option(None, help="Email tasks: the edited subject to send."),
    body: str = typer.Option(None, help="Email tasks: the edited HTML body to send."),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Complete a task; an email task's draft is sent."""
    ctx = make_context()
    actor = acting_user(ctx, as_user)
    task = complete_task(ctx, task_id, edits=TaskEdits(subject, body), actor_id=actor.id)
    console.print(
        f"task {task.id} completed" + (" (email queued)" if task.type == TaskKind.EMAIL else "")
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
