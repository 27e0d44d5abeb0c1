"""On SQLite exactly one worker may run: a second one refuses to start, clearly.

SQLite has no `SKIP LOCKED`; one writer at a time is also all it can do well. An OS
file lock beside the database file is released by the kernel when the process dies,
so a crashed worker never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from cadenza.domain.errors import CadenzaError, ErrorCode


class WorkerLock:
    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self.path: Path | None = None
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            self.path = (
                Path(url.database).resolve().with_name(Path(url.database).name + ".worker.lock")
            )
        self._fd: int | None = None

    def acquire(self) -> None:
        if self.path is None:
            return  # PostgreSQL: any number of workers, coordinated by row locks
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CadenzaError(
                ErrorCode.CONFLICT,
                f"another worker is already running on this SQLite database ({self.path}). "
                "SQLite supports one worker; use PostgreSQL to run several.",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WorkerLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
