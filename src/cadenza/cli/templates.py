"""`cadenza templates …` and `cadenza snippets …`: the template library and snippets
(docs/content.md), as the acting user (`--as`) sees them."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cadenza.cli.common import AS_USER_HELP, acting_user, console, fails_cleanly, make_context
from cadenza.domain.enums import Sharing
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.analytics.template_figures import template_figures
from cadenza.services.sequences import snippets
from cadenza.services.sequences import templates_library as library

app = typer.Typer(help="Email templates of the team's library.", no_args_is_help=True)
snippets_app = typer.Typer(help="Snippets inserted with #name.", no_args_is_help=True)

SHARING_HELP = "private, team_use or team_edit"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, f"cannot read {path}: {exc}") from None


@app.command("list")
@fails_cleanly
def list_templates(
    search: str = typer.Option(None, "--search", "-q", help="In name or subject"),
    folder: str = typer.Option(None, "--folder"),
    archived: bool = typer.Option(False, "--archived", help="List the archived ones"),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """List the templates you may use, with their figures."""
    ctx = make_context()
    found = library.list_templates(
        ctx, acting_user(ctx, as_user).id, search=search, folder=folder, archived=archived
    )
    figures = template_figures(ctx, [t.id for t in found])
    table = Table("id", "name", "subject", "folder", "sharing", "steps", "sent", "reply rate")
    for t in found:
        f = figures[t.id]
        rate = f"{f.reply_rate:.0%}" if f.reply_rate is not None else "—"
        table.add_row(str(t.id), t.name, t.subject, t.folder or "", t.sharing,
                      str(f.used_in_steps), str(f.sent), rate)  # fmt: skip
    console.print(table)


@app.command("show")
@fails_cleanly
def show(template_id: int, as_user: str = typer.Option(None, "--as", help=AS_USER_HELP)) -> None:
    """Show a template's text and figures."""
    ctx = make_context()
    t = library.get_template(ctx, acting_user(ctx, as_user).id, template_id)
    f = template_figures(ctx, [t.id])[t.id]
    console.print(f"[bold]{t.name}[/] (#{t.id}) · {t.sharing} · folder: {t.folder or '—'}")
    if t.archived_at:
        console.print(f"archived {t.archived_at:%Y-%m-%d %H:%M} UTC")
    console.print(f"Subject: {t.subject}", highlight=False, markup=False)
    console.print(t.body, highlight=False, markup=False)
    rate = f"{f.reply_rate:.0%}" if f.reply_rate is not None else "—"
    console.print(
        f"used in {f.used_in_steps} steps · sent {f.sent} · opened {f.opened} · "
        f"clicked {f.clicked} · replied {f.replied} · reply rate {rate}"
    )


@app.command("create")
@fails_cleanly
def create(
    name: str = typer.Option(..., "--name"),
    subject: str = typer.Option(..., "--subject", help="A template: {{ contact.firstname }} …"),
    body: Path = typer.Option(..., "--body", exists=True, dir_okay=False, help="HTML file"),
    folder: str = typer.Option(None, "--folder"),
    sharing: str = typer.Option(Sharing.PRIVATE, "--sharing", help=SHARING_HELP),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Create a template owned by the acting user."""
    ctx = make_context()
    made = library.create_template(
        ctx, acting_user(ctx, as_user).id, name=name, subject=subject, body=_read(body),
        folder=folder, sharing=sharing,
    )  # fmt: skip
    console.print(f"template {made.id} created: {made.name}")


@snippets_app.command("list")
@fails_cleanly
def list_snippets(as_user: str = typer.Option(None, "--as", help=AS_USER_HELP)) -> None:
    """Your snippets, then those shared with the team."""
    ctx = make_context()
    table = Table("id", "shortcut", "text", "sharing", "owner")
    for s in snippets.list_snippets(ctx, acting_user(ctx, as_user).id):
        table.add_row(str(s.id), f"#{s.name}", s.body[:60], s.sharing, str(s.owner_id))
    console.print(table)


@snippets_app.command("create")
@fails_cleanly
def create_snippet(
    name: str = typer.Argument(..., help="The shortcut: a-z, 0-9, _ and -"),
    body: str = typer.Argument(..., help="The text inserted"),
    sharing: str = typer.Option(Sharing.PRIVATE, "--sharing", help=SHARING_HELP),
    as_user: str = typer.Option(None, "--as", help=AS_USER_HELP),
) -> None:
    """Create a snippet owned by the acting user."""
    ctx = make_context()
    made = snippets.create_snippet(
        ctx, acting_user(ctx, as_user).id, name=name, body=body, sharing=sharing
    )
    console.print(f"snippet {made.id} created: #{made.name}")
