"""`cadenza contacts …`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from cadenza.cli.common import (
    console,
    err_console,
    fails_cleanly,
    make_context,
    print_import_report,
)
from cadenza.services.crm.contact_import import import_contacts, read_file
from cadenza.services.crm.contacts import search_contacts

app = typer.Typer(help="Contacts.", no_args_is_help=True)


@app.command("import")
@fails_cleanly
def import_csv(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
) -> None:
    """Import contacts from a CSV file with an 'email' column (re-importing updates)."""
    ctx = make_context()
    data = read_file(ctx, file)
    with Progress(
        TextColumn("importing"), BarColumn(), MofNCompleteColumn(), console=err_console
    ) as progress:
        task = progress.add_task("import", total=None)
        report = import_contacts(
            ctx,
            data,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    print_import_report(report)


@app.command("list")
@fails_cleanly
def list_contacts(
    search: str = typer.Option(None, "--search", "-s", help="Part of an email, name or company."),
    limit: int = typer.Option(20),
    after: int = typer.Option(None, help="Show contacts after this id (the next page)."),
) -> None:
    """List contacts, with the flags that stop them from being enrolled."""
    page = search_contacts(make_context(), search, limit=limit, after_id=after)
    table = Table("id", "name", "company", "time zone", "flags")
    table.add_column("email", no_wrap=True)
    for c in page.results:
        flags = [
            f for f, on in (("bounced", c.bounced_at), ("unsubscribed", c.unsubscribed_at),
                            ("blocked", c.blocked)) if on
        ]  # fmt: skip
        name = " ".join(p for p in (c.firstname, c.lastname) if p)
        table.add_row(
            str(c.id), name, c.company or "", c.timezone or "", ", ".join(flags), c.email or "—"
        )
    console.print(table)
    if page.next_cursor:
        console.print(f"more: --after {page.next_cursor}")
