"""Several prepared statements run in order as one call to the database server.

The worker's hand-over commit is a chain of small statements (services/delivery/
handover.py): the states checked, the messages marked, the mailboxes' slots taken, the
runs recorded, the enrollments finished, the attempts written. On PostgreSQL each one
was a round trip, and a round trip over TCP costs both processes a turn of the kernel's
network stack and a wake-up of the other: on two shared cores, measured alone
(bench/handover.py), the commit's statements as ten round trips cost 4.1 ms of CPU
against 2.8 ms as one call and the commit (docs/benchmarks.md, thirtieth session).
Pipeline mode, tried before, kept a message per statement and the Python that waits on
each.

`ServerBatch` keeps the statements as they are (SQLAlchemy Core, compiled once per
dialect by store/prepared.py, the same SQL SQLite runs) and, on PostgreSQL, installs
a PL/pgSQL function whose body is those statements in order, their parameters its
arguments, and calls it once: each statement's rows (as JSON values: numbers,
strings, booleans and nulls) and row count come back together. The function is named
after a digest of its body, so a changed statement is a new function and workers of two
versions never call each other's; it is created on first use, in a transaction of its
own. Where it cannot be (no right to create functions), or on SQLite, the statements
run one after the other on the caller's connection, with the same results.

The statements cannot see each other's results except through the database: a batch
is for a chain whose statements each guard themselves (a state checked where it is
written), and whose caller checks the results afterwards and rolls the transaction
back where they are not what it needed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import psycopg
from psycopg import postgres
from sqlalchemy import Connection

from cadenza.store import libpq_statements
from cadenza.store.libpq_statements import LibpqStatement, Result
from cadenza.store.prepared import Prepared, announce

log = logging.getLogger(__name__)

_NUMBERED = re.compile(rb"\$(\d+)")


class BatchUnavailable(Exception):
    """The batch's function is gone (a database restored without it): the caller's
    transaction is aborted and must be rolled back; the next call creates it again."""


@dataclass(frozen=True)
class _Function:
    name: str
    create: str
    call: LibpqStatement
    returns_rows: tuple[bool, ...]


class ServerBatch:
    """Statements run in order, as one call on PostgreSQL (see the module)."""

    def __init__(self, name: str, steps: Sequence[Prepared]) -> None:
        if not re.fullmatch(r"[a-z_]+", name):
            raise ValueError("a batch's name is lower-case letters and underscores")
        self.name = name
        self.steps = tuple(steps)
        self._function: _Function | None = None
        self._ready: dict[str, bool] = {}  # by database: whether its function exists
        self._lock = threading.Lock()

    def run(
        self,
        connection: Connection,
        params: Sequence[dict[str, Any]],
        needed: Sequence[bool] | None = None,
    ) -> list[Result]:
        """Each statement's result, run in order in `connection`'s transaction with its
        own parameters. `needed`: False for a statement that has nothing to do (no rows
        bound): run one by one, it is skipped, its result empty; in the one call it runs,
        and changes and returns nothing. Raises `BatchUnavailable` where the function
        was dropped. Each statement is announced to SQLAlchemy's listeners as if it ran
        on its own (store/prepared.py), so what counts or explains statements hears
        the same on both paths."""
        if len(params) != len(self.steps):
            raise ValueError(f"{len(self.steps)} statements, {len(params)} sets of parameters")
        needed = [True] * len(self.steps) if needed is None else needed
        driver: Any = connection.connection.driver_connection
        if (
            connection.dialect.name != "postgresql"
            or not libpq_statements.usable(driver)
            or not self._installed(connection)
        ):
            return [
                _one(step, connection, given) if wanted else Result([], 0)
                for step, given, wanted in zip(self.steps, params, needed, strict=True)
            ]
        function = self._built(connection)
        values: dict[str, Any] = {}
        for i, (step, given, wanted) in enumerate(zip(self.steps, params, needed, strict=True)):
            plan = step.plan(connection.dialect)
            bound = plan.parameters(given)
            assert plan.libpq is not None
            if wanted:
                announce(connection, None, plan.sql, bound)
            for j, name in enumerate(plan.libpq.order, start=1):
                values[_argument(i, j)] = bound[name]
        try:
            row = libpq_statements.run(driver, function.call, values).fetchone()
        except psycopg.errors.UndefinedFunction as gone:
            self._ready.pop(_database(connection), None)
            raise BatchUnavailable(function.name) from gone
        assert row is not None
        answers = json.loads(row[0], object_pairs_hook=_values)
        results = []
        for i, returns_rows in enumerate(function.returns_rows):
            rows, count = answers[2 * i], answers[2 * i + 1]
            results.append(Result([tuple(r) for r in rows] if returns_rows else [], count))
        return results

    def _installed(self, connection: Connection) -> bool:
        """Whether this database has the function: created on first use, on a connection
        and in a transaction of its own (the caller's may not wait on DDL), under an
        advisory lock so that workers starting together create it once."""
        database = _database(connection)
        ready = self._ready.get(database)
        if ready is not None:
            return ready
        with self._lock:
            if database in self._ready:
                return self._ready[database]
            function = self._built(connection)
            key = int.from_bytes(hashlib.sha256(function.name.encode()).digest()[:8], "big",
                                 signed=True)  # fmt: skip
            raw = connection.engine.raw_connection()
            try:
                driver: Any = raw.driver_connection
                with driver.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
                    cursor.execute("SELECT 1 FROM pg_proc WHERE proname = %s", (function.name,))
                    if cursor.fetchone() is None:
                        cursor.execute(function.create.encode())
                raw.commit()
                self._ready[database] = True
            except psycopg.Error as refused:
                raw.rollback()
                log.warning(
                    "batch_function_unavailable",
                    extra={"batch": self.name, "error": str(refused).splitlines()[0]},
                )
                self._ready[database] = False
            finally:
                raw.close()
            return self._ready[database]

    def _built(self, connection: Connection) -> _Function:
        if self._function is None:
            self._function = _function_of(self.name, self.steps, connection)
        return self._function


def _function_of(name: str, steps: Sequence[Prepared], connection: Connection) -> _Function:
    """The function's SQL and the statement that calls it, from the steps' own SQL."""
    arguments: list[str] = []
    declarations: list[str] = []
    body: list[str] = []
    answers: list[str] = []
    order: list[str] = []
    formats: list[int] = []
    items: list[tuple[int, Any] | None] = []
    types: list[int] = []
    returns_rows: list[bool] = []
    for i, step in enumerate(steps):
        plan = step.plan(connection.dialect)
        statement = plan.libpq
        if statement is None:
            raise ValueError("a batch runs PostgreSQL statements")
        for j, (parameter, item, oid) in enumerate(
            zip(statement.order, statement.items, statement.types, strict=True), start=1
        ):
            if item is None and not oid:  # typed by its cast alone (a JSON path's key)
                oid = _cast_oid(statement.sql, j, parameter)
            type_name = _type_name(oid if item is None else item[0], parameter)
            arguments.append(f"{_argument(i, j)} {type_name}{'' if item is None else '[]'}")
            order.append(_argument(i, j))
            formats.append(statement.formats[j - 1])
            items.append(item)
            types.append(oid)
        text = _NUMBERED.sub(partial(_named, i), statement.sql).decode()
        declarations.append(f"_rows_{i} json; _count_{i} bigint;")
        if plan.returns_rows:
            body.append(
                f"WITH cadenza_rows AS ({text})\n"
                f"SELECT coalesce(json_agg(cadenza_rows), '[]'::json), count(*)\n"
                f"INTO _rows_{i}, _count_{i} FROM cadenza_rows;"
            )
        else:
            body.append(f"{text};\nGET DIAGNOSTICS _count_{i} = ROW_COUNT;")
        answers += [f"_rows_{i}", f"_count_{i}"]
        returns_rows.append(plan.returns_rows)
    digest = hashlib.sha256("\n".join([*arguments, *body]).encode()).hexdigest()[:12]
    function = f"cadenza_batch_{name}_{digest}"
    create = (
        f"CREATE OR REPLACE FUNCTION {function}({', '.join(arguments)})\n"
        f"RETURNS text LANGUAGE plpgsql AS $cadenza$\n"
        f"DECLARE\n{chr(10).join(declarations)}\nBEGIN\n"
        + "\n".join(body)
        + f"\nRETURN json_build_array({', '.join(answers)})::text;\nEND\n$cadenza$"
    )
    placeholders = ", ".join(f"${n}" for n in range(1, len(order) + 1))
    call = LibpqStatement(
        name=b"cadenza_" + function.encode(),
        sql=f"SELECT {function}({placeholders})".encode(),
        order=tuple(order),
        formats=tuple(formats),
        items=tuple(items),
        types=tuple(types),
    )
    return _Function(function, create, call, tuple(returns_rows))


def _type_name(oid: int, parameter: str) -> str:
    info = postgres.types.get(oid) if oid else None
    if info is None:
        raise ValueError(f"parameter {parameter!r} has no declared type: a batch needs one")
    return info.name


def _cast_oid(sql: bytes, number: int, parameter: str) -> int:
    cast = re.search(rb"\$%d::([A-Z][A-Z ]*)" % number, sql)
    words = cast.group(1).decode().split() if cast else []
    info = None
    while words and info is None:  # the longest run of words that names a type
        info = postgres.types.get(" ".join(words).lower())
        words.pop()
    if info is None:
        raise ValueError(f"parameter {parameter!r} has no declared type: a batch needs one")
    return info.oid


def _named(step: int, number: re.Match[bytes]) -> bytes:
    return _argument(step, int(number.group(1))).encode()


def _argument(step: int, number: int) -> str:
    return f"_s{step}_{number}"


def _values(pairs: list[tuple[str, Any]]) -> list[Any]:
    """A row's values in its columns' order (two columns may share a name)."""
    return [value for _, value in pairs]


def _database(connection: Connection) -> str:
    return connection.engine.url.render_as_string(hide_password=True)


def _one(step: Prepared, connection: Connection, params: dict[str, Any]) -> Result:
    """One statement of the batch run on its own, its result read as the batch's."""
    ran = step.run(connection, params)
    if step.plan(connection.dialect).returns_rows:
        rows = [tuple(row) for row in ran.fetchall()]
        return Result(rows, len(rows))
    return Result([], ran.rowcount)
