"""Statements compiled once per dialect and run straight on the driver's cursor.

For the engine's per-email statements, and the few reads an API request makes on
every call whose cost is mostly SQLAlchemy's (the token check, the enroll preview's
reads). SQLAlchemy's execution layer (result objects, events, parameter processing)
costs about three times what SQLite needs to run these small statements, and they run
several times for every email sent (bench/engine.py) or on every request
(bench/api.py). The statement is still written with SQLAlchemy Core, so the SQL is
the dialect's own, and bound values still pass through each column type's processor
(UTCDateTime included), so what is stored is exactly what the ORM would store; `rows`
passes read values through each column type's result processor the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable

from cadenza.store import libpq_statements
from cadenza.store.libpq_statements import LibpqStatement


@dataclass(frozen=True)
class _Plan:
    sql: str
    fixed: dict[str, Any]  # values written into the statement itself
    processors: dict[str, Any]
    # positional paramstyles (SQLite's qmark): (name, its processor or None) in the
    # statement's order, so a row is one list built in one pass; None: by name
    positional: tuple[tuple[str, Any], ...] | None
    # PostgreSQL: the same statement as libpq runs it (store/libpq_statements.py)
    libpq: LibpqStatement | None = None
    # (position, result processor) of each selected column that has one, for
    # `Prepared.rows`: the others' values are the driver's as they are
    results: tuple[tuple[int, Any], ...] = ()

    @classmethod
    def of(cls, statement: Executable, dialect: Dialect) -> _Plan:
        compiled = statement.compile(dialect=dialect)
        if any(b.expanding for b in compiled.binds.values()):
            raise ValueError("IN lists are not supported: write them as OR of equalities")
        processors = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
        fixed = {name: b.value for name, b in compiled.binds.items() if not b.required}
        positional = None
        if compiled.positiontup is not None:
            positional = tuple((name, processors.get(name)) for name in compiled.positiontup)
        sql = str(compiled)
        libpq = None
        if dialect.name == "postgresql":
            sql = _arrays_in_binary(sql, compiled.binds)
            libpq = LibpqStatement.of(sql, _declared(compiled.binds, dialect))
        results: tuple[tuple[int, Any], ...] = ()
        if isinstance(statement, Select):
            found = (
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in statement.selected_columns
            )
            results = tuple((i, p) for i, p in enumerate(found) if p is not None)
        return cls(sql, fixed, processors, positional, libpq, results)

    def parameters(self, given: dict[str, Any]) -> Any:
        values = {**self.fixed, **given} if self.fixed else given
        if self.positional is not None:
            return [
                values[name] if processor is None else processor(values[name])
                for name, processor in self.positional
            ]
        values = dict(values)
        for name, processor in self.processors.items():
            values[name] = processor(values[name])
        return values


def _declared(binds: dict[str, Any], dialect: Dialect) -> dict[str, str]:
    """Each parameter's type as the dialect names it; none for the few internal types
    that have no name of their own (a JSON path's index)."""
    declared = {}
    for name, bind in binds.items():
        try:
            declared[name] = str(bind.type.compile(dialect=dialect))
        except (AttributeError, NotImplementedError):
            continue
    return declared


def _arrays_in_binary(sql: str, binds: dict[str, Any]) -> str:
    """psycopg sends an array parameter (a commit's rows, store/bound_rows.py) in its
    binary format: each element prefixed by its length. In the text format, each element
    went through a regular expression looking for quotes and backslashes to escape; for
    a claim's new messages (their bodies and MIME text) that was a tenth of a PostgreSQL
    worker's time holding the interpreter lock, in a profile of bench/engine.py
    (docs/benchmarks.md)."""
    for name, bind in binds.items():
        if isinstance(bind.type, ARRAY):
            sql = sql.replace(f"%({name})s", f"%({name})b")
    return sql


def json_column(stored: Any) -> Any:
    """A JSON column's value from a row `Prepared.run` returned: rows come as the driver
    gives them, and SQLite's driver gives JSON as its text, psycopg as its value."""
    return json.loads(stored) if isinstance(stored, str) else stored


def _announce(connection: Connection, cursor: Any, sql: str, values: Any) -> None:
    """SQLAlchemy's `before_cursor_execute` listeners hear these statements as they hear
    its own (the SQL and the driver's parameters), so whatever counts or explains the
    statements a request or a commit sends (tests/api/test_request_statements.py, the
    query-plan tests) sees these too. Nothing is done when nobody listens."""
    listeners = connection.dispatch.before_cursor_execute
    if listeners:
        for listener in listeners:
            listener(connection, cursor, sql, values, None, False)


class Prepared:
    """One statement, or (`build`) one whose SQL differs by dialect beyond what
    SQLAlchemy's compiler does for it: `build(dialect_name)` is called once per dialect
    (store/bound_rows.py: arrays on PostgreSQL, a JSON array on SQLite)."""

    def __init__(
        self,
        statement: Executable | None = None,
        *,
        build: Callable[[str], Executable] | None = None,
    ) -> None:
        if (statement is None) == (build is None):
            raise ValueError("give a statement or a function that builds one per dialect")
        self.statement = statement
        self._build = build
        self._plans: dict[str, _Plan] = {}

    def run(self, connection: Connection, params: dict[str, Any] | None = None) -> Any:
        """Runs in `connection`'s transaction; returns the DBAPI cursor, or what callers
        read of one (rowcount, fetchone, fetchall) where libpq runs it: on PostgreSQL,
        on the connections that leave preparing to store/libpq_statements.py (the
        hand-over's, `Database.keyed_engine`)."""
        plan = self._plan(connection.dialect)
        driver: Any = connection.connection.driver_connection
        if plan.libpq is not None and libpq_statements.usable(driver):
            values = plan.parameters(params or {})
            _announce(connection, None, plan.sql, values)
            return libpq_statements.run(driver, plan.libpq, values)
        return self._on_cursor(connection, driver, params or {})

    def _on_cursor(self, connection: Connection, driver: Any, params: dict[str, Any]) -> Any:
        """Runs on a new cursor of the driver's connection; returns the cursor."""
        plan = self._plan(connection.dialect)
        values = plan.parameters(params)
        cursor = driver.cursor()
        _announce(connection, cursor, plan.sql, values)
        cursor.execute(plan.sql, values)
        return cursor

    def rows(self, connection: Connection, params: dict[str, Any] | None = None) -> list[Any]:
        """A SELECT's rows, each value as the ORM would give it (each column type's own
        result processor: an instant aware on SQLite too, a JSON column parsed), as
        tuples: for the reads a request makes many of, where an ORM object per row
        cost more than the row itself (the token check, services/enrollment/candidates.py)."""
        return self._processed(connection.dialect, self.run(connection, params).fetchall())

    def _processed(self, dialect: Dialect, rows: list[Any]) -> list[Any]:
        plan = self._plan(dialect)
        if not plan.results:
            return rows
        read = []
        for row in rows:
            values = list(row)
            for i, process in plan.results:
                if values[i] is not None:
                    values[i] = process(values[i])
            read.append(tuple(values))
        return read

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            statement = self.statement if self._build is None else self._build(dialect.name)
            assert statement is not None
            plan = self._plans[dialect.name] = _Plan.of(statement, dialect)
        return plan


# A statement and its parameters, one of several run together (`rows_together`).
Read = tuple["Prepared", dict[str, Any]]


def rows_together(connection: Connection, reads: Sequence[Read]) -> list[list[Any]]:
    """The rows of several SELECTs that do not depend on each other, each list as
    `Prepared.rows` gives it, in the order given.

    On PostgreSQL they go in one round trip (psycopg's pipeline mode: the statements
    are sent together, the server runs them in order, and one sync collects every
    result). The enroll request's reads of its contacts, their live enrollments, their
    block-list entries and the daily limit's count were four waits of the ten a preview
    made; under 32 clients each wait is also a turn of the server's process for the
    CPU (bench/api.py, docs/benchmarks.md, the twenty-first session). Elsewhere, one
    after the other."""
    if connection.dialect.name != "postgresql":
        return [prepared.rows(connection, params) for prepared, params in reads]
    driver: Any = connection.connection.driver_connection
    with driver.pipeline():
        cursors = [prepared._on_cursor(connection, driver, params) for prepared, params in reads]
    # leaving the pipeline synced it: every cursor holds its rows
    return [
        prepared._processed(connection.dialect, cursor.fetchall())
        for (prepared, _), cursor in zip(reads, cursors, strict=True)
    ]
