"""`cadenza contacts …`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from cadenza.cli.common import (
    AS_USER_HELP,
    acting_user,
    console,
    err_console,
    fails_cleanly,
    make_context,
    print_import_report,
)
from cadenza.services.crm import contact_export, suppressions
from cadenza.services.crm.contact_import import import_contacts, read_file
from cadenza.services.crm.contacts import delete_contact, search_contacts

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


@app.command("export")
@fails_cleanly
def export(
    contact_id: int = typer.Argument(..., min=1),
    output: Path = typer.Option(
        None, "--output", "-o", dir_okay=False, help="Write the JSON here (default: stdout)."
    ),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Everything held about one contact that you may read, as JSON (audited)."""
    ctx = make_context()
    document = contact_export.export_contact(ctx, contact_id, actor_id=acting_user(ctx, as_user).id)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    # Personal data: readable by this account only, as the key file is.
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
    left_out = ", ".join(f"{n} {part}" for part, n in document["omitted"].items() if n)
    note = f" (left out, not yours to read: {left_out})" if left_out else ""
    err_console.print(f"contact {contact_id} exported to {output}{note}", highlight=False)


@app.command("erase")
@fails_cleanly
def erase(
    contact_id: int = typer.Argument(..., min=1),
    yes: bool = typer.Option(False, "--yes", help="Erase without asking."),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Erase a contact and its history; its address is suppressed (docs/contact-data.md)."""
    ctx = make_context()
    actor_id = acting_user(ctx, as_user).id
    if not yes:
        typer.confirm(f"Erase contact {contact_id} and everything held about it?", abort=True)
    delete_contact(ctx, contact_id, actor_id)
    console.print(f"contact {contact_id} erased; its address is suppressed", highlight=False)


@app.command("unsuppress")
@fails_cleanly
def unsuppress(
    email: str = typer.Argument(..., help="The erased contact's address."),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Admins: let an erased contact's address be added again (audited, without it)."""
    ctx = make_context()
    lifted = suppressions.lift(ctx, email, actor_id=acting_user(ctx, as_user).id)
    console.print(
        f"suppression {lifted.id} lifted (erased contact {lifted.contact_id}): "
        "the address may be added again",
        highlight=False,
    )
