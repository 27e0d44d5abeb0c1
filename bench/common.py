"""Shared pieces of the benchmarks: a sink in its own process, scratch databases, and
waiting for the workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import psycopg

if TYPE_CHECKING:
    from cadenza.store.db import Database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.support (the seeding helper and the SMTP sink)

PG_ADMIN = os.environ.get("CADENZA_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def ready_workers(db: Database) -> int:
    """Workers that have beaten: each does before its first claim (engine/worker.py)."""
    from sqlalchemy import func, select

    from cadenza.store.models import WorkerHeartbeat

    with db.read() as session:
        return session.scalar(select(func.count()).select_from(WorkerHeartbeat)) or 0


def check_running(workers: list[subprocess.Popen[bytes]]) -> None:
    """Stops the run when a worker has ended before it: its figures would be wrong, and
    a wait for its heartbeat or its emails would never end."""
    for worker in workers:
        if worker.poll() is not None:
            raise SystemExit(f"a worker ended before the run did (exit {worker.returncode})")


def wait_until_ready(db: Database, workers: list[subprocess.Popen[bytes]]) -> None:
    """Until every worker has beaten (`ready_workers`), checking that none has ended."""
    while ready_workers(db) < len(workers):
        check_running(workers)
        time.sleep(0.05)


def database_server_cpu() -> float:
    """CPU seconds of the PostgreSQL server's processes so far: the live ones', and what
    the postmaster collected from its ended children (each connection's backend ends
    with its worker). The whole server: nothing else may use it during a run."""
    total = 0.0
    for process in psutil.process_iter(["name", "username"]):
        if process.info["name"] != "postgres" and process.info["username"] != "postgres":
            continue
        try:
            times = process.cpu_times()
            total += times.user + times.system
            if process.ppid() == 1 or process.parent().name() != "postgres":  # the postmaster
                total += times.children_user + times.children_system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


@contextmanager
def sink_process(options: list[str] | None = None):
    """An SMTP sink in another process, so it does not share this one's interpreter lock;
    `options` are the sink's own (`--latency 0.25`)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.smtp_sink", "--port", "0", *(options or [])],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline().strip()
    host, port = line.removeprefix("listening on ").rsplit(":", 1)
    counted = {"pid": process.pid}
    try:
        yield host, int(port), counted
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].strip().splitlines()
        counted["messages"] = int(output[-1]) if output else -1


@contextmanager
def scratch_database(kind: str, *, keep: bool = False):
    """A migrated, empty database: a temporary SQLite file or a throw-away PostgreSQL db.
    `keep` leaves it behind (its URL is `db.url`), for a later run to measure again
    without building it anew."""
    from cadenza.store import migrate
    from cadenza.store.db import Database

    if kind == "sqlite":
        if keep:
            db = Database(f"sqlite:///{tempfile.mkdtemp(prefix='cadenza_bench_')}/bench.db")
            migrate.upgrade(db)
            yield db
            db.dispose()
            return
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/bench.db"
            db = Database(url)
            migrate.upgrade(db)
            yield db
            db.dispose()
        return
    name = f"cadenza_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    db = Database(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}")
    try:
        migrate.upgrade(db)
        yield db
    finally:
        db.dispose()
        if not keep:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
