"""`cadenza outbox …`: what was sent, what waits and why, and the review of unknown sends."""

from __future__ import annotations

import typer
from rich.table import Table

from cadenza.cli.common import AS_USER_HELP, acting_user, console, fails_cleanly, make_context
from cadenza.services.delivery.outbox import (
    get_message,
    list_messages,
    list_waiting,
    resolve_unknown,
    retry_messages,
)

app = typer.Typer(help="Sent and waiting emails.", no_args_is_help=True)


@app.command("list")
@fails_cleanly
def list_command(
    status: str = typer.Option(None, help="prepared, handing, sent, failed or unknown."),
    enrollment: int = typer.Option(None, help="Only this enrollment's emails."),
    limit: int = typer.Option(20),
) -> None:
    """Emails, newest first, with the server's answer."""
    table = Table("id", "status", "to", "subject", "sent at (UTC)", "server reply")
    for m in list_messages(make_context(), status=status, enrollment_id=enrollment, limit=limit):
        table.add_row(
            str(m.id),
            m.status,
            m.to_email,
            m.subject,
            f"{m.sent_at:%Y-%m-%d %H:%M:%S}" if m.sent_at else "",
            m.smtp_reply or "",
        )
    console.print(table)


@app.command("waiting")
@fails_cleanly
def waiting_command(limit: int = typer.Option(20)) -> None:
    """Email steps due or held back, and why each one waits."""
    table = Table("step run", "enrollment", "step", "due (UTC)", "waits for", "last error")
    for run in list_waiting(make_context(), limit=limit):
        table.add_row(
            str(run.id),
            str(run.enrollment_id),
            str(run.step_position),
            f"{run.due_at:%Y-%m-%d %H:%M:%S}",
            run.wait_reason or "its time",
            run.last_error or "",
        )
    console.print(table)


@app.command("show")
@fails_cleanly
def show_command(
    message_id: int, raw: bool = typer.Option(False, help="Print the message exactly as sent.")
) -> None:
    """One email: headers, text, every delivery attempt."""
    message, attempts = get_message(make_context(), message_id)
    if raw:
        console.print(message.raw or "", highlight=False, markup=False)
        return
    console.print(f"[bold]{message.subject}[/]  ({message.status})", highlight=False)
    console.print(f"From: {message.from_email}  To: {message.to_email}", highlight=False)
    console.print(f"Message-ID: {message.message_id}", highlight=False, markup=False)
    if message.in_reply_to:
        console.print(f"In-Reply-To: {message.in_reply_to}", highlight=False, markup=False)
    console.print()
    console.print(message.body_text, highlight=False, markup=False)
    for a in attempts:
        console.print(
            f"attempt {a.attempt} at {a.at:%Y-%m-%d %H:%M:%S}: {a.outcome} {a.reply or ''}"
        )


@app.command("review")
@fails_cleanly
def review_command(
    message_id: int,
    delivered: bool = typer.Option(
        ..., "--delivered/--not-delivered", help="What the recipient's side shows."
    ),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Settle an email whose outcome is unknown: delivered (go on) or not (send again)."""
    ctx = make_context()
    actor = acting_user(ctx, as_user)
    message = resolve_unknown(ctx, message_id, delivered=delivered, actor_id=actor.id)
    console.print(f"message {message.id} is now {message.status}")


@app.command("retry")
@fails_cleanly
def retry_command(
    message_ids: list[int] = typer.Argument(..., help="The failed or unknown messages."),
    reason: str = typer.Option(..., help="Why they are sent again (kept in the audit log)."),
    not_delivered: bool = typer.Option(
        False, "--not-delivered", help="Confirm that unknown ones were NOT delivered."
    ),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Send failed (or unknown, with --not-delivered) emails again: the same message, due
    now, one more try; their enrollments go on. Exits 1 when any was refused."""
    ctx = make_context()
    actor = acting_user(ctx, as_user)
    outcomes = retry_messages(
        ctx, message_ids, reason=reason, confirm_not_delivered=not_delivered, actor_id=actor.id
    )
    for outcome in outcomes:
        if outcome.ok:
            console.print(f"[green]✓[/] message {outcome.message_id}: queued to go again")
        else:
            console.print(
                f"[red]✗[/] message {outcome.message_id}: {outcome.code}: {outcome.message}",
                highlight=False,
            )
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)
