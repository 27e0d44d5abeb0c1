"""How many round trips PostgreSQL's wire protocol made, read off libpq's own trace.

Each round trip ends with the server's ReadyForQuery, whether the statements went one
by one or several in a pipeline before one Sync, and whatever psycopg sent for itself
(a transaction's BEGIN and COMMIT, which SQLAlchemy's events do not hear)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import Engine, event


@dataclass
class Trace:
    lines: list[str] = field(default_factory=list)

    @property
    def round_trips(self) -> int:
        return sum(1 for line in self.lines if "\tReadyForQuery" in line)

    def sent(self, start: str) -> int:
        """How many statements the client sent (Parse or Query) whose text begins so."""
        return sum(1 for line in self.lines if line.startswith("F") and f'"{start}' in line)


@contextmanager
def traced(driver: psycopg.Connection) -> Iterator[Trace]:
    """libpq's trace of what `driver` (a psycopg connection) and the server exchange
    within the block."""
    trace = Trace()
    with tempfile.TemporaryFile(mode="w+") as out:
        driver.pgconn.trace(out.fileno())
        driver.pgconn.set_trace_flags(
            psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE
        )
        try:
            yield trace
        finally:
            driver.pgconn.untrace()
            out.seek(0)
            trace.lines.extend(out.read().splitlines())


@contextmanager
def traced_engine(engine: Engine) -> Iterator[Trace]:
    """libpq's trace of every connection `engine`'s pool hands out within the block,
    from its checkout to its return."""
    trace = Trace()
    files: dict[int, Any] = {}
    with ExitStack() as open_files:

        def start(driver, _record, _proxy) -> None:
            out = files[id(driver)] = open_files.enter_context(tempfile.TemporaryFile("w+"))
            driver.pgconn.trace(out.fileno())
            driver.pgconn.set_trace_flags(
                psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE
            )

        def stop(driver, _record) -> None:
            out = files.pop(id(driver), None)
            if out is not None:
                driver.pgconn.untrace()
                out.seek(0)
                trace.lines.extend(out.read().splitlines())

        # the pool's ping comes before "checkout" is heard: it is not in the trace
        event.listen(engine.pool, "checkout", start)
        event.listen(engine.pool, "checkin", stop)
        try:
            yield trace
        finally:
            event.remove(engine.pool, "checkout", start)
            event.remove(engine.pool, "checkin", stop)
