"""What every command shares: the services context, the acting user, error reporting."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import ParamSpec, TypeVar
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from cadenza.cli import identity
from cadenza.config import Settings
from cadenza.domain.errors import CadenzaError
from cadenza.services.accounts.users import UserView
from cadenza.services.context import Context

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

AS_USER_HELP = (
    "Act as this user (email); defaults to CADENZA_CLI_USER, then `cadenza use`'s choice, "
    "then the only user."
)


def make_context() -> Context:
    return Context.from_settings(Settings())


def fails_cleanly(command: Callable[P, R]) -> Callable[P, R]:
    """Turns a CadenzaError into one readable line and exit status 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CadenzaError as exc:
            err_console.print(f"[bold red]error[/] {exc.code}: {exc.message}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def acting_user(ctx: Context, email: str | None) -> UserView:
    """The user a command acts as (cli/identity.py says how it is chosen)."""
    return identity.resolve(ctx, email).user


def fmt_time(moment: datetime | None, tz: ZoneInfo) -> str:
    if moment is None:
        return "—"
    local = moment.astimezone(tz)
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}"


def print_import_report(report) -> None:
    """Rejected lines on stderr, the totals on stdout, exit 1 when any line was rejected."""
    for error in report.errors:
        err_console.print(f"line {error.line}: {error.code}: {error.message}", highlight=False)
    console.print(
        f"{report.rows} rows: {report.created} created, {report.updated} updated, "
        f"{len(report.errors)} rejected"
    )
    if report.errors:
        raise typer.Exit(1)
