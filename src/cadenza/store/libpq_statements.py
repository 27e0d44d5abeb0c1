"""The engine's per-email statements on PostgreSQL, run over libpq itself.

psycopg's cursor spends, on every execute, its own Python on the way to libpq: a new
cursor and its adapters, the query's conversion and its prepared-statement bookkeeping,
a dumper found for each parameter by looking into it (a list's first non-null item),
and the result's row maker. With two workers on two cores, a worker's hand-over commit
carries three or four emails and a dozen statements; that Python was half of the time
the hand-over held the interpreter lock, 0.27 ms an email (bench/engine.py and a
`py-spy --gil` profile, docs/benchmarks.md, *Fifteenth session*), against 0.09 ms for
all of SQLite's hand-over.

Here a statement is prepared once per connection under a name of its own and run with
`PQexecPrepared` on psycopg's own connection, which releases the interpreter lock while
it waits. Everything it decides is decided once per statement, from the compiled SQL:
each `%(name)s` becomes `$n`, and each array parameter, bound in PostgreSQL's binary
format, gets its item type from its cast (`::INTEGER[]`). Scalars go as text, which
each parameter's cast reads as SQLAlchemy declared it. Rows come back through psycopg's
own loaders, errors as psycopg's own exceptions, and psycopg commits or rolls back
the transaction as its own (it reads the transaction's state from libpq), so the
callers see no difference.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
from psycopg import postgres, pq
from psycopg.adapt import Transformer
from psycopg.errors import error_from_result

_PLACEHOLDER = re.compile(r"%%|%\((\w+)\)([sb])(?:::([A-Z ]+)(?:\(\d+\))?\[\])?")
_NAMES = count(1)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_PG_EPOCH_DAY = date(2000, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
_BINARY, _TEXT = 1, 0


def _int4(value: Any) -> bytes:
    return struct.pack(">i", value)


def _int8(value: Any) -> bytes:
    return struct.pack(">q", value)


def _text(value: Any) -> bytes:
    return str.encode(value)


def _timestamptz(value: Any) -> bytes:
    return struct.pack(">q", (value - _PG_EPOCH) // _MICROSECOND)


def _date(value: Any) -> bytes:
    return struct.pack(">i", (value - _PG_EPOCH_DAY).days)


def _boolean(value: Any) -> bytes:
    return b"\x01" if value else b"\x00"


# How an array's item is written in binary, by the item type's name in its cast.
_WRITERS: dict[str, Any] = {
    "INTEGER": _int4,
    "BIGINT": _int8,
    "VARCHAR": _text,
    "TEXT": _text,
    "TIMESTAMP WITH TIME ZONE": _timestamptz,
    "DATE": _date,
    "BOOLEAN": _boolean,
}
_LENGTH = re.compile(r"\(\d+(?:, *\d+)?\)")


def _oid(type_name: str) -> int:
    """A type's oid by its SQL name (`VARCHAR(20)`, `TIMESTAMP WITH TIME ZONE`), from
    psycopg's registry of PostgreSQL's types; 0, the server's guess, for one it lacks."""
    info = postgres.types.get(_LENGTH.sub("", type_name).lower())
    return info.oid if info is not None else 0


@dataclass(frozen=True)
class LibpqStatement:
    """One statement's SQL with numbered parameters, and how each is sent."""

    name: bytes
    sql: bytes
    order: tuple[str, ...]  # the parameters' names, $1 first
    formats: tuple[int, ...]
    items: tuple[tuple[int, Any] | None, ...]  # an array's item oid and writer; None: text
    types: tuple[int, ...]  # a scalar's type, as SQLAlchemy declared it (0: the server's guess)

    @classmethod
    def of(cls, sql: str, declared: dict[str, str]) -> LibpqStatement:
        """From SQLAlchemy's psycopg SQL (`%(name)s`, arrays `%(name)b::TYPE[]`) and the
        type each parameter was declared with, as the dialect names it (`BOOLEAN`): the
        server reads each text value as that type, as psycopg would have sent it, even
        where no cast follows it in the SQL."""
        numbers: dict[str, int] = {}
        items: list[tuple[int, Any] | None] = []

        def numbered(match: re.Match[str]) -> str:
            if match.group(0) == "%%":
                return "%"
            name, kind, item = match.group(1), match.group(2), match.group(3)
            if name not in numbers:
                numbers[name] = len(numbers) + 1
                if kind == "b":
                    if item not in _WRITERS:
                        raise ValueError(f"no binary writer for an array of {item!r} ({name})")
                    items.append((_oid(item), _WRITERS[item]))
                else:
                    items.append(None)
            cast = match.group(0)[match.group(0).index(")") + 2 :]
            return f"${numbers[name]}{cast}"

        text = _PLACEHOLDER.sub(numbered, sql)
        formats = tuple(_TEXT if item is None else _BINARY for item in items)
        types = tuple(
            _oid(declared.get(name, "")) if item is None else 0
            for name, item in zip(numbers, items, strict=True)
        )
        return cls(b"cadenza_%d" % next(_NAMES), text.encode(), tuple(numbers), formats,
                   tuple(items), types)  # fmt: skip

    def values(self, params: dict[str, Any]) -> list[Any]:
        return [
            _scalar(params[name]) if item is None else _array(params[name], *item)
            for name, item in zip(self.order, self.items, strict=True)
        ]


class Result:
    """What the callers read of a DBAPI cursor: its rows and how many it changed."""

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None


# The statements each connection has prepared, by the connection (psycopg's object: a
# new connection, after a reconnect, prepares them again).
_PREPARED: WeakKeyDictionary[psycopg.Connection[Any], set[bytes]] = WeakKeyDictionary()


def usable(connection: psycopg.Connection[Any]) -> bool:
    """A connection on which psycopg prepares nothing of its own (`prepare_threshold`
    None: `Database.keyed_engine`), and whose transactions start with a plain BEGIN.

    psycopg, where it prepares statements, deallocates every prepared statement of the
    connection after a ROLLBACK (a savepoint's too), a DROP or an ALTER, ours with its
    own; the next run of ours would then fail and abort its transaction."""
    return (
        connection.prepare_threshold is None
        and connection.isolation_level is None
        and connection.read_only is None
        and connection.deferrable is None
    )


def run(
    connection: psycopg.Connection[Any], statement: LibpqStatement, params: dict[str, Any]
) -> Result:
    pgconn = connection.pgconn
    with connection.lock:
        if not connection.autocommit and pgconn.transaction_status == pq.TransactionStatus.IDLE:
            # what psycopg sends before a transaction's first statement; it reads the
            # transaction's state from libpq, so it commits this one as its own
            _checked(pgconn.exec_(b"BEGIN"), connection)
        prepared = _PREPARED.setdefault(connection, set())
        if statement.name not in prepared:
            _checked(pgconn.prepare(statement.name, statement.sql, statement.types), connection)
            prepared.add(statement.name)
        result = pgconn.exec_prepared(
            statement.name, statement.values(params), statement.formats, _TEXT
        )
        _checked(result, connection)
        rows: list[tuple[Any, ...]] = []
        if result.status == pq.ExecStatus.TUPLES_OK and result.ntuples:
            loader = Transformer(connection)
            loader.set_pgresult(result)
            rows = loader.load_rows(0, result.ntuples, tuple)
        return Result(rows, result.command_tuples or 0)


def _checked(result: pq.abc.PGresult, connection: psycopg.Connection[Any]) -> None:
    """Raises what psycopg's cursor would have: the statement's own error, or, where
    the connection was lost (the server restarted), an OperationalError."""
    if result.status in _OK:
        return
    encoding = connection.info.encoding
    if connection.pgconn.status != pq.ConnStatus.OK:
        message = result.get_error_message(encoding) or "no answer"
        raise psycopg.OperationalError(f"the connection to the server was lost: {message}")
    raise error_from_result(result, encoding=encoding)


def _scalar(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, int | Decimal | float):
        return str(value).encode()
    if isinstance(value, datetime | date):
        return value.isoformat().encode()
    if isinstance(value, dict | list):
        return json.dumps(value).encode()
    raise TypeError(f"no text for a parameter of type {type(value).__name__}")


def _array(values: list[Any], oid: int, write: Any) -> bytes:
    """PostgreSQL's binary array: dimensions, a null flag, the item type, and each item
    as its length and bytes (-1 for a null)."""
    if not values:
        return struct.pack(">iii", 0, 0, oid)
    parts = []
    nulls = 0
    for value in values:
        if value is None:
            parts.append(b"\xff\xff\xff\xff")
            nulls = 1
        else:
            item = write(value)
            parts.append(struct.pack(">i", len(item)) + item)
    return struct.pack(">iiiii", 1, nulls, oid, len(values), 1) + b"".join(parts)
