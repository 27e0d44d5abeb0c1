"""A `cadenza worker` process that counts where its time goes, for bench/engine.py.

    python bench/timed_worker.py OUT.json worker --exit-when-idle ...

Runs the `cadenza` command with the given arguments; at exit writes to OUT.json the
process's CPU seconds since its imports were done and, timed around every call into
the database driver (statements, commits, rollbacks), the wall-clock seconds spent
waiting on the database and how many statements and commits were made, and when the
imports were done (the bench times the run from the first worker's). The timing wraps the
drivers from outside (psycopg's cursor and connection classes, sqlite3's connection
factory, and on PostgreSQL the function that runs the per-email statements over libpq,
store/libpq_statements.run), so the product's code carries no benchmark hooks.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import resource
import sqlite3
import sys
import time
from typing import Any

import psycopg

try:
    from cadenza.store import libpq_statements
except ImportError:  # code from before it (an alternating run against an older commit)
    libpq_statements = None  # type: ignore[assignment]

COUNTS: dict[str, Any] = {"db_seconds": 0.0, "statements": 0, "commits": 0}
# With CADENZA_BENCH_STATEMENTS set (bench/engine.py --statements): each statement's
# count and the microseconds waited for it, by its text's start ("COMMIT" for the
# commits); counting costs the worker some CPU of its own.
BY_TEXT: collections.Counter[str] | None = (
    collections.Counter() if os.environ.get("CADENZA_BENCH_STATEMENTS") else None
)
WAITED: collections.Counter[str] = collections.Counter()


def _timed(method: Any, key: str) -> Any:
    def timed(*args: Any, **kwargs: Any) -> Any:
        text = None
        if BY_TEXT is not None:
            text = "COMMIT" if key == "commits" else None
            if key == "statements" and len(args) > 1:
                sql = args[1].sql.decode() if hasattr(args[1], "sql") else str(args[1])
                text = " ".join(sql.split())[:90]
            if text is not None:
                BY_TEXT[text] += 1
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            waited = time.perf_counter() - started
            COUNTS["db_seconds"] += waited
            COUNTS[key] += 1
            if text is not None:
                WAITED[text] += round(waited * 1e6)

    return timed


class _TimedSqliteCursor(sqlite3.Cursor):
    execute = _timed(sqlite3.Cursor.execute, "statements")
    executemany = _timed(sqlite3.Cursor.executemany, "statements")


class _TimedSqliteConnection(sqlite3.Connection):
    commit = _timed(sqlite3.Connection.commit, "commits")

    def cursor(self, factory: Any = _TimedSqliteCursor) -> Any:  # type: ignore[override]
        return super().cursor(factory)

    def execute(self, *args: Any) -> Any:  # type: ignore[override]
        return self.cursor().execute(*args)


def _install() -> None:
    psycopg.Cursor.execute = _timed(psycopg.Cursor.execute, "statements")  # type: ignore[method-assign]
    psycopg.Cursor.executemany = _timed(psycopg.Cursor.executemany, "statements")  # type: ignore[method-assign]
    psycopg.Connection.commit = _timed(psycopg.Connection.commit, "commits")  # type: ignore[method-assign]
    # the per-email statements on PostgreSQL go past psycopg's cursor, over libpq
    if libpq_statements is not None:
        libpq_statements.run = _timed(libpq_statements.run, "statements")
    plain_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", _TimedSqliteConnection)
        return plain_connect(*args, **kwargs)

    sqlite3.connect = connect  # type: ignore[assignment]
    sqlite3.dbapi2.connect = connect  # type: ignore[attr-defined]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _write(path: str) -> None:
    """CPU seconds from the moment the imports were done, as the run is timed: the
    imports cost as much CPU as sending a thousand emails."""
    with open(path, "w") as out:
        by_text = dict(BY_TEXT) if BY_TEXT is not None else {}
        cpu = _cpu_seconds() - COUNTS["cpu_at_ready"]
        json.dump({**COUNTS, "cpu_seconds": cpu, "by_text": by_text,
                   "waited": dict(WAITED)}, out)  # fmt: skip


if __name__ == "__main__":
    out_path = sys.argv[1]
    _install()
    atexit.register(_write, out_path)
    sys.argv = ["cadenza", *sys.argv[2:]]
    from cadenza.cli import app

    COUNTS["ready_at"] = time.time()  # imports done: the bench times the run from here
    COUNTS["cpu_at_ready"] = _cpu_seconds()
    app()
