"""`cadenza backup` and `cadenza restore`: a consistent copy of the live database, and
putting one back without sending any email twice (docs/backup.md).

A backup first commits an `installation.backup` audit entry, then copies the database:
the copy holds that entry as its latest, so a restored database knows when its backup
was taken, on SQLite and PostgreSQL alike, with nothing kept beside the file.

A restore refuses to replace a database that has data unless forced, migrates the copy
to this release's schema and holds for review what the old installation may have sent
since (delivery.restore), before anything can use it: on SQLite all of that happens on
a temporary file renamed over the target at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.delivery.restore import RestoreHold, hold_after_restore
from cadenza.store import backup as files
from cadenza.store import migrate
from cadenza.store.db import Database
from cadenza.store.models import AuditEntry

BACKUP_ACTION = "installation.backup"


@dataclass(frozen=True)
class BackupReport:
    path: Path
    taken_at: datetime
    dialect: str
    size: int  # bytes


def _checked_destination(path: Path) -> Path:
    path = path.expanduser().absolute()
    if not path.parent.is_dir():
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"{path.parent} is not a directory: create it first",
            {"path": str(path)},
        )
    files.refuse_existing(path)
    return path


def take_backup(
    ctx: Context,
    path: Path,
    *,
    pages: int = files.PAGES_PER_STEP,
    progress: files.Progress | None = None,
) -> BackupReport:
    """Copies the database to `path` while the server and workers go on (SQLite's backup
    API over one read snapshot; pg_dump on PostgreSQL). `pages` and `progress` pace the
    SQLite copy (see store.backup.backup_sqlite).

    No acting user: this is the operator's command, run where the database (or its
    credentials) already are; whoever can run it can read every row anyway."""
    path = _checked_destination(path)
    taken_at = ctx.clock.now()
    with ctx.db.transaction() as session:
        record(session, ctx, None, BACKUP_ACTION, "installation", None, {"path": str(path)})
    if ctx.db.dialect == "sqlite":
        files.backup_sqlite(ctx.db, path, pages=pages, progress=progress)
    else:
        files.backup_postgresql(ctx.db, path)
    return BackupReport(path, taken_at, ctx.db.dialect, path.stat().st_size)


def backup_taken_at(ctx: Context) -> datetime | None:
    """When the backup this database was restored from was taken: its latest backup
    entry (None for a copy made by other means)."""
    with ctx.db.read() as session:
        return session.scalar(
            select(func.max(AuditEntry.at)).where(AuditEntry.action == BACKUP_ACTION)
        )


def _refuse_data(ctx: Context, force: bool) -> None:
    if not force and files.has_data(ctx.db):
        raise CadenzaError(
            ErrorCode.CONFLICT,
            "the database already has data: restoring would replace it "
            "(stop the server and workers, then use --force to replace it)",
        )


def _settle(ctx: Context, db: Database) -> RestoreHold:
    """Migrates the restored copy and holds what may have been sent since the backup."""
    migrate.upgrade(db)
    restored = Context(db=db, clock=ctx.clock, settings=ctx.settings)
    return hold_after_restore(restored, backup_taken_at(restored))


def restore_backup(ctx: Context, path: Path, *, force: bool = False) -> RestoreHold:
    """Replaces the installation's database with the backup at `path` (the server and
    workers stopped). Refused over a database with data unless `force`."""
    path = path.expanduser().absolute()
    target = files.sqlite_file(ctx.db)
    if target is None:
        _refuse_data(ctx, force)
        files.refuse_other_sessions(ctx.db)
        files.check_postgresql_backup(ctx.db, path)
        files.restore_postgresql(ctx.db, path)
        try:
            return _settle(ctx, ctx.db)
        except BaseException:
            files.empty_postgresql(ctx.db)  # never a restored database left unmarked
            raise
    if target.exists():
        _refuse_data(ctx, force)
    ctx.db.dispose()
    if not target.parent.is_dir():
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, f"{target.parent} is not a directory")
    staged = files.stage_sqlite_restore(path, target)
    try:
        db = Database(f"sqlite:///{staged}")
        try:
            hold = _settle(ctx, db)
        finally:
            db.dispose()  # the last connection folds the WAL back into the file
        files.commit_sqlite_restore(staged, target)
    finally:
        files.discard_sqlite_restore(staged)
    return hold
