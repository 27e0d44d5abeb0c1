"""`cadenza secrets …`: the sealing keys kept outside the database."""

from __future__ import annotations

import typer

from cadenza.cli.common import console, fails_cleanly, make_context
from cadenza.services.accounts.keys import key_source, rotate, seal_everything

app = typer.Typer(help="Keys that seal stored secrets.", no_args_is_help=True)


@app.command("rotate")
@fails_cleanly
def rotate_command() -> None:
    """Re-seal every stored secret under a new key (key file) or under CADENZA_SECRET_KEY
    after moving the previous one to CADENZA_OLD_SECRET_KEYS."""
    ctx = make_context()
    report = rotate(ctx)
    console.print(
        f"{report.resealed} secret(s) re-sealed, {report.sealed} clear one(s) sealed, "
        f"under key {report.key_id} ({key_source(ctx).describe()})"
    )


@app.command("seal")
@fails_cleanly
def seal_command() -> None:
    """Seal any secret still stored in clear (done by `db upgrade`, `serve` and `worker`)."""
    report = seal_everything(make_context())
    console.print(f"{report.sealed} clear secret(s) sealed under key {report.key_id}")
