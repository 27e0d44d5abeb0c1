"""Copying a whole database out and back in: the file mechanics of `cadenza backup/restore`.

SQLite: an online copy through SQLite's backup API, read inside one read transaction so
that the copy is the database as it was at one instant even while the server and the
worker keep writing (WAL lets them: a reader never blocks the writer). A restore is
written to a temporary file beside the target and renamed over it, so the target is
either the old database or the whole restored one, never half of each.

PostgreSQL: `pg_dump --format=custom` and `pg_restore`, found on PATH, of the same major
version as the server (or newer). The connection settings go to them in the libpq
environment variables, never on the command line, so a password never shows in `ps`.

What a restore must then change in the data (sends that may have happened after the
backup) is the delivery service's business, not this module's: docs/backup.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import inspect, make_url, text

from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.store.db import Database

# Pages copied per step of an SQLite backup: small enough that a progress callback runs
# often, large enough that a big file is copied in few steps (4 KiB pages: 4 MiB a step).
PAGES_PER_STEP = 1024

Progress = Callable[[int, int, int], object]  # (status, remaining, total) as sqlite3 passes

# Tables whose rows make an installation "not empty": restoring over them needs --force.
_DATA_TABLES = ("users", "contacts", "sequences", "enrollments", "messages")


def sqlite_file(db: Database) -> Path | None:
    """The database's file on SQLite; None on PostgreSQL. An in-memory database cannot be
    backed up or restored into."""
    if db.dialect != "sqlite":
        return None
    name = make_url(db.url).database
    if not name or name == ":memory:":
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, "an in-memory SQLite database has no file to back up"
        )
    return Path(name)


def has_data(db: Database) -> bool:
    """Whether the database holds any user, contact, sequence, enrollment or message.
    A freshly migrated (or missing) database has none."""
    tables = set(inspect(db.engine).get_table_names())
    with db.engine.connect() as connection:
        for table in _DATA_TABLES:
            if table in tables:
                found = connection.execute(text(f"SELECT 1 FROM {table} LIMIT 1")).first()
                if found is not None:
                    return True
    return False


def refuse_existing(path: Path) -> None:
    if path.exists():
        raise CadenzaError(
            ErrorCode.CONFLICT,
            f"{path} already exists: choose a new file (a backup never overwrites one)",
            {"path": str(path)},
        )


def _temporary_beside(path: Path) -> Path:
    """A new empty file in the same directory (so a rename is atomic), hidden, unique,
    and readable by its owner only: a copy holds every contact and every hash."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return temporary


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sqlite_copy(
    source: sqlite3.Connection,
    target: Path,
    pages: int,
    progress: Progress | None,
) -> None:
    with contextlib.closing(sqlite3.connect(target)) as destination:
        source.backup(destination, pages=pages, progress=progress)
        check = destination.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise CadenzaError(ErrorCode.INVALID_STATE, f"the copy is damaged: {check}")
        # The copy is one self-contained file: no -wal beside it to forget when moving it.
        destination.execute("PRAGMA journal_mode=DELETE")


def backup_sqlite(
    db: Database,
    path: Path,
    *,
    pages: int = PAGES_PER_STEP,
    progress: Progress | None = None,
) -> None:
    """Copies the live SQLite database to `path` (which must not exist), consistently.

    The source connection opens a read transaction before the first page is copied and
    keeps it to the last, so every page comes from one snapshot: SQLite does not restart
    the backup when another connection commits meanwhile (it only does so between the
    steps of a backup that holds no transaction), and the writers are never blocked.
    `progress` is called after each step of `pages` pages (tests interleave the worker's
    ticks there). Written to a temporary name, then renamed: a crash leaves no half file.
    """
    source_file = sqlite_file(db)
    assert source_file is not None, "backup_sqlite is for SQLite databases"
    refuse_existing(path)
    temporary = _temporary_beside(path)
    try:
        with contextlib.closing(sqlite3.connect(source_file, isolation_level=None)) as source:
            source.execute("PRAGMA busy_timeout=30000")
            source.execute("BEGIN DEFERRED")
            source.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot
            try:
                _sqlite_copy(source, temporary, pages, progress)
            finally:
                source.execute("ROLLBACK")
        os.replace(temporary, path)
        _fsync_directory(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def check_sqlite_backup(path: Path) -> None:
    """Refuses a file that is not an intact SQLite copy of a Cadenza database."""
    if not path.is_file():
        raise CadenzaError(
            ErrorCode.NOT_FOUND, f"{path} does not exist or is not a file", {"path": str(path)}
        )
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as copy:
            check = copy.execute("PRAGMA quick_check").fetchone()[0]
            tables = {row[0] for row in copy.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as exc:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, f"{path} is not an SQLite database ({exc})"
        ) from None
    if check != "ok":
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, f"{path} is damaged: {check}")
    if "alembic_version" not in tables:
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, f"{path} is not a Cadenza database")


def stage_sqlite_restore(backup: Path, target: Path) -> Path:
    """Copies the backup to a temporary file beside `target`, for the restore to migrate
    and mark before `commit_sqlite_restore` puts it in place: its path."""
    check_sqlite_backup(backup)
    staged = _temporary_beside(target)
    try:
        with contextlib.closing(sqlite3.connect(f"file:{backup}?mode=ro", uri=True)) as source:
            _sqlite_copy(source, staged, -1, None)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return staged


def commit_sqlite_restore(staged: Path, target: Path) -> None:
    """Puts the staged copy in place of `target` in one rename. The target's own WAL
    files go first: left beside the new file, SQLite would replay them into it."""
    if target.exists():  # the file keeps the mode and owner the installation runs with
        status = target.stat()
        os.chmod(staged, status.st_mode & 0o777)
        with contextlib.suppress(PermissionError):  # only root may give files away
            os.chown(staged, status.st_uid, status.st_gid)
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(staged, target)
    _fsync_directory(target.parent)


def discard_sqlite_restore(staged: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{staged}{suffix}").unlink(missing_ok=True)


# --- PostgreSQL ------------------------------------------------------------------------


def _libpq_environment(db: Database) -> dict[str, str]:
    """The connection as libpq environment variables (PGHOST, PGPASSWORD, …)."""
    url = make_url(db.url)
    values = {
        "PGHOST": url.host,
        "PGPORT": str(url.port) if url.port else None,
        "PGUSER": url.username,
        "PGPASSWORD": url.password if isinstance(url.password, str) else None,
        "PGDATABASE": url.database,
    }
    for key, value in url.query.items():  # e.g. ?sslmode=require
        if isinstance(value, str):
            values[f"PG{key.upper()}"] = value
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    environment.update({k: v for k, v in values.items() if v})
    return environment


def _tool(name: str, db: Database) -> str:
    """The path of pg_dump or pg_restore, refused when missing or older than the server."""
    found = shutil.which(name)
    if found is None:
        raise CadenzaError(
            ErrorCode.INVALID_STATE,
            f"{name} is not installed (or not on PATH): install the PostgreSQL client "
            "tools of the server's major version",
        )
    version = subprocess.run(
        [found, "--version"], capture_output=True, text=True, check=False
    ).stdout
    digits = version.split()[-1] if version.split() else ""
    tool_major = int(digits.split(".")[0]) if digits.split(".")[0].isdigit() else 0
    with db.engine.connect() as connection:
        server_major = (
            int(connection.execute(text("SHOW server_version_num")).scalar_one()) // 10000
        )
    if tool_major < server_major:
        raise CadenzaError(
            ErrorCode.INVALID_STATE,
            f"{name} is version {tool_major} but the server is version {server_major}: "
            f"install the client tools of version {server_major} or newer",
        )
    return found


def _run(command: list[str], db: Database, what: str) -> None:
    done = subprocess.run(
        command, env=_libpq_environment(db), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise CadenzaError(
            ErrorCode.INVALID_STATE,
            f"{what} failed: {detail[-1] if detail else f'exit status {done.returncode}'}",
        )


def backup_postgresql(db: Database, path: Path) -> None:
    """`pg_dump --format=custom` of the database to `path` (which must not exist).
    pg_dump reads one snapshot, so the dump is consistent while workers write."""
    refuse_existing(path)
    temporary = _temporary_beside(path)
    try:
        _run(
            [_tool("pg_dump", db), "--format=custom", "--no-owner", f"--file={temporary}"],
            db,
            "pg_dump",
        )
        os.replace(temporary, path)
        _fsync_directory(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def refuse_other_sessions(db: Database) -> None:
    """PostgreSQL: refuses while anything else is connected to the database (a server, a
    worker): they would go on with the old data, or send from the restored data before
    it is marked. SQLite's counterpart is the worker lock the command holds."""
    db.engine.dispose()
    with db.engine.connect() as connection:
        others = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    db.engine.dispose()
    if others:
        raise CadenzaError(
            ErrorCode.CONFLICT,
            f"{others} other session(s) are connected to the database: stop the server and "
            "every worker before restoring",
        )


def empty_postgresql(db: Database) -> None:
    """Drops every table: what a restore that could not finish leaves, rather than a
    restored database nobody checked for emails already sent."""
    db.engine.dispose()
    tables = inspect(db.engine).get_table_names()
    with db.engine.begin() as connection:
        for table in tables:
            connection.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
    db.engine.dispose()


def check_postgresql_backup(db: Database, path: Path) -> None:
    """Refuses a file pg_restore cannot read (`pg_restore --list`), before anything of the
    database is touched."""
    if not path.is_file():
        raise CadenzaError(
            ErrorCode.NOT_FOUND, f"{path} does not exist or is not a file", {"path": str(path)}
        )
    _run([_tool("pg_restore", db), "--list", str(path)], db, f"reading {path}")


def restore_postgresql(db: Database, path: Path) -> None:
    """`pg_restore` of a custom-format dump into the database, in one transaction (all or
    nothing). Every table already there is dropped first (the caller checked the file and
    --force): tables of a newer release than the backup's would otherwise stay behind."""
    empty_postgresql(db)  # also lets go of our pooled connections (pg_restore's locks)
    _run(
        [
            _tool("pg_restore", db),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={make_url(db.url).database}",
            str(path),
        ],
        db,
        "pg_restore",
    )
