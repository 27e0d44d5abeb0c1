"""`cadenza backup PATH` and `cadenza restore PATH` (docs/backup.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from sqlalchemy.exc import OperationalError

from cadenza.cli.common import console, fails_cleanly, make_context
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.engine.worker_lock import WorkerLock
from cadenza.services.operations.backup import restore_backup, take_backup


@contextmanager
def _reaching_the_database() -> Iterator[None]:
    """A database that does not answer (wrong URL, server down) is one line, not a trace."""
    try:
        yield
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[-1] if exc.orig else type(exc).__name__
        raise CadenzaError(
            ErrorCode.INVALID_STATE, f"cannot reach the database: {reason}"
        ) from None


@fails_cleanly
def backup(
    path: Path = typer.Argument(..., help="The file to write (must not exist yet)."),
) -> None:
    """Copy the database to PATH while the server and workers keep running."""
    with _reaching_the_database():
        report = take_backup(make_context(), path)
    console.print(
        f"backed up the {report.dialect} database to {report.path} "
        f"({report.size:,} bytes, taken {report.taken_at:%Y-%m-%d %H:%M:%S} UTC)"
    )


@fails_cleanly
def restore(
    path: Path = typer.Argument(..., help="A file written by `cadenza backup`."),
    force: bool = typer.Option(False, "--force", help="Replace a database that already has data."),
) -> None:
    """Replace the database with a backup; stop the server and every worker first.

    Emails the old installation may have sent after the backup are held for review
    (`cadenza outbox list --status unknown`), never sent again automatically."""
    ctx = make_context()
    lock = WorkerLock(ctx.db.url)
    try:
        lock.acquire()
    except CadenzaError:  # on SQLite, a worker (or `serve`) holds it
        raise CadenzaError(
            ErrorCode.CONFLICT,
            "a worker is running on this database: stop the server and every worker first",
        ) from None
    except OSError as exc:  # the lock file goes beside the SQLite database
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"cannot restore to {ctx.db.url}: {exc.strerror} ({exc.filename})",
        ) from None
    try:  # held throughout: no worker can start on the database before it is marked
        with _reaching_the_database():
            hold = restore_backup(ctx, path, force=force)
    finally:
        lock.release()
    taken = f"{hold.backup_taken_at:%Y-%m-%d %H:%M:%S} UTC" if hold.backup_taken_at else "unknown"
    console.print(f"restored {path} (backup taken {taken})")
    console.print(
        f"held for review: {hold.steps} email step(s), {hold.reminders} task reminder(s); "
        "see `cadenza outbox list --status unknown` and settle each with `cadenza outbox review`"
    )
    if hold.not_composed:
        console.print(
            f"{hold.not_composed} due step(s) could not be composed and stay pending: "
            "the worker fails them with the reason"
        )
