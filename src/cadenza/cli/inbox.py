"""`cadenza inbox …`: read the inboxes now, and see where each one was read up to."""

from __future__ import annotations

import typer
from rich.table import Table

from cadenza.cli.common import console, fails_cleanly, make_context
from cadenza.engine.inbox_poller import InboxPoller
from cadenza.services.signals.inbox_cursors import list_cursors

app = typer.Typer(
    help="Inbox watching (IMAP): replies, auto-replies, bounces.", no_args_is_help=True
)


@app.command("poll")
@fails_cleanly
def poll_command(
    mailbox: int = typer.Option(None, help="Only this mailbox (default: every one with IMAP)."),
) -> None:
    """Read new mail once, act on replies, auto-replies and bounces."""
    results = InboxPoller(make_context()).poll_once(mailbox)
    failed = False
    for result in results:
        if result.error:
            failed = True
            console.print(f"mailbox {result.mailbox_id}: [red]{result.error}[/]", highlight=False)
        else:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(result.kinds.items())) or "nothing new"
            console.print(f"mailbox {result.mailbox_id}: {result.fetched} read ({kinds})")
    if not results:
        console.print("no mailbox has IMAP settings: `cadenza mailboxes set-imap`")
    if failed:
        raise typer.Exit(1)


@app.command("status")
@fails_cleanly
def status_command() -> None:
    """Each folder's cursor: UIDVALIDITY, last UID read, last poll and its error."""
    table = Table("mailbox", "folder", "uidvalidity", "last uid", "polled (UTC)", "error")
    for c in list_cursors(make_context()):
        table.add_row(
            str(c.mailbox_id),
            c.folder,
            str(c.uidvalidity),
            str(c.last_uid),
            f"{c.polled_at:%Y-%m-%d %H:%M:%S}",
            c.last_error or "",
        )
    console.print(table)
