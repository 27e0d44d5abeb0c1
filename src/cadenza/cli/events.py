"""`cadenza events …`: review recorded events and undo a complaint, unsubscribe or bounce
that was posted by mistake (with an audit entry), without touching the database."""

from __future__ import annotations

import typer
from rich.table import Table

from cadenza.cli.common import AS_USER_HELP, acting_user, console, fails_cleanly, make_context
from cadenza.services.signals import events

app = typer.Typer(help="Events in: review, and undo mistakes.", no_args_is_help=True)


@app.command("list")
@fails_cleanly
def list_command(
    kind: list[str] = typer.Option(None, "--kind", help="Repeat: bounce, unsubscribe, …"),
    unverified: bool = typer.Option(
        False, "--unverified", help="Only inbound bounces/auto-replies that changed nothing."
    ),
    limit: int = typer.Option(50, min=1, max=200),
) -> None:
    """Newest first: what arrived, from where, and whether it was undone."""
    table = Table("id", "kind", "contact", "enrollment", "source", "when", "note")
    for e in events.list_events(make_context(), kinds=kind, unverified=unverified, limit=limit):
        note = "revoked" if e.revoked_at else (e.data.get("unverified") or "")
        table.add_row(
            str(e.id), e.kind, str(e.contact_id or "-"), str(e.enrollment_id or "-"),
            str(e.data.get("source", "-")), e.occurred_at.isoformat(timespec="seconds"), note,
        )  # fmt: skip
    console.print(table)


@app.command("revoke")
@fails_cleanly
def revoke_command(
    event_id: int,
    reason: str = typer.Option(..., help="Why: kept with the event and in the audit log."),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Undo a complaint, unsubscribe or bounce (admins); ended enrollments stay ended."""
    ctx = make_context()
    done = events.revoke(ctx, acting_user(ctx, as_user), event_id, reason)
    cleared = [
        name
        for name, flag in (("unsubscribed", done.unsubscribed_cleared),
                           ("bounced", done.bounced_cleared))
        if flag
    ]  # fmt: skip
    what = f"; contact {done.contact_id} no longer {' or '.join(cleared)}" if cleared else ""
    console.print(f"event {done.event_id} revoked{what}")
