"""`cadenza db …` and `cadenza demo`."""

from __future__ import annotations

import typer

from cadenza.cli.common import console, fails_cleanly, make_context
from cadenza.services.accounts.keys import seal_everything
from cadenza.services.counters import upkeep as counter_upkeep
from cadenza.services.demo import is_empty, load_demo
from cadenza.store import migrate

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
@fails_cleanly
def upgrade() -> None:
    """Migrate the database to the latest schema (safe to run again)."""
    ctx = make_context()
    migrate.upgrade(ctx.db)
    sealed = seal_everything(ctx).sealed  # values stored before sealing existed
    if sealed:
        console.print(f"{sealed} stored secret(s) sealed")
    console.print(f"database at {ctx.db.engine.url.render_as_string()} is up to date")


@app.command("rebuild-counters")
@fails_cleanly
def rebuild_counters(
    sequence: int | None = typer.Option(
        None, "--sequence", min=1, help="Only this sequence's (default: every sequence's)."
    ),
) -> None:
    """Recount the sequences' figures from their rows (after rows were written around
    Cadenza, e.g. a bulk load or a manual repair): docs/analytics.md, *Counters*."""
    ctx = make_context()
    written = counter_upkeep.rebuild(ctx, sequence)
    console.print(f"counters rebuilt: {written} row(s)")


@fails_cleanly
def demo(
    if_empty: bool = typer.Option(
        False, "--if-empty", help="Do nothing (successfully) when the database has data."
    ),
) -> None:
    """Load the demo data set: a rep, a capture mailbox, three sequences, 200 contacts."""
    ctx = make_context()
    if not is_empty(ctx):
        console.print("the database already has data: demo not loaded")
        if if_empty:
            return
        raise typer.Exit(1)
    login = load_demo(ctx)
    console.print("[green]demo data loaded[/]")
    console.print(f"  user:      {login.email}  (password: {login.password})")
    console.print(f"  API token: {login.api_token}")
