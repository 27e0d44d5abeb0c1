"""Many rows bound to one statement, which reads them as a table.

The worker's hand-over commit marks and records the emails of many mailboxes at once
(services/delivery/handover.py). One statement for all of them, instead of one per
email, is one execution and one round trip: on PostgreSQL each statement costs the
server an execution and the worker a wait, and with two workers on two cores that
cost, not the sending, set the pace (bench/engine.py). The SQL does not depend on how
many rows there are, so it is compiled once and the server prepares it once
(store/prepared.py), where a VALUES list would be a new statement for every count.

PostgreSQL gets one array per column, read by `unnest`: its planner expects a few rows
from an array it cannot see (a generic plan), so it looks the rows up by their keys'
indexes, where `json_to_recordset`'s fixed guess of 100 rows made it scan whole tables.
SQLite has no arrays: it gets one JSON array of rows, read by `json_each`. Each value
passes through its column type's bind processor, so an instant is compared exactly as
it is stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    String,
    Text,
    bindparam,
    cast,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable, FromClause
from sqlalchemy.types import TypeEngine


class BoundRows:
    """A table of named, typed columns whose rows are given when the statement runs."""

    def __init__(self, name: str, **columns: TypeEngine[Any]) -> None:
        self.name = name
        self.columns = columns

    def table(self, dialect_name: str, alias: str | None = None) -> FromClause:
        """The rows as a FROM item named after the parameter (or `alias`, to read them
        twice in one statement), its columns typed."""
        name = alias or self.name
        if dialect_name == "postgresql":
            # a JSON value would be taken for a nested array: it goes as its text
            arrays = [
                bindparam(self._array(column), type_=ARRAY(Text if _is_json(t) else t))
                for column, t in self.columns.items()
            ]
            rows = func.unnest(*arrays).table_valued(*self.columns)
            if not any(_is_json(t) for t in self.columns.values()):
                return rows.render_derived(name=name)
            texts = rows.render_derived(name=f"{name}_text")
            return select(
                *(
                    (cast(texts.c[c], t) if _is_json(t) else texts.c[c]).label(c)
                    for c, t in self.columns.items()
                )
            ).subquery(name)
        each = func.json_each(bindparam(self.name, type_=String)).table_valued("value")
        fields = [
            func.json_extract(each.c.value, f"$[{i}]", type_=type_).label(column)
            for i, (column, type_) in enumerate(self.columns.items())
        ]
        return select(*fields).subquery(name)

    @classmethod
    def of(cls, name: str, model: type[Any], *columns: str) -> BoundRows:
        """Rows of these columns of `model`'s table, typed as the table's columns are:
        each value passes its column type's own processor and checks (an enum's
        vocabulary) exactly as in a plain INSERT."""
        table = model.__table__
        return cls(name, **{column: table.c[column].type for column in columns})

    def inserted(
        self, model: type[Any], dialect_name: str, **same: ColumnElement[Any]
    ) -> Executable:
        """One INSERT of all the rows into `model`'s table, whose columns are named as
        these (and `same`: one value for every row). Not `executemany`: psycopg
        pipelines it in one round trip, but converts each row on its own, and the server
        runs each row as a statement of its own (bench/engine.py: two thousand a second
        on PostgreSQL, a worker's figures and delivery attempts)."""
        rows = self.table(dialect_name)
        columns = [*self.columns, *same]
        return insert(model).from_select(columns, select(*rows.c, *same.values()))

    def bind(self, rows: Iterable[Sequence[Any]], dialect: Dialect) -> dict[str, Any]:
        """The parameters for these rows, each a sequence in the columns' order."""
        rows = list(rows)
        if dialect.name == "postgresql":
            return {
                self._array(column): [
                    json.dumps(row[i]) if _is_json(t) and row[i] is not None else row[i]
                    for row in rows
                ]
                for i, (column, t) in enumerate(self.columns.items())
            }
        processors = [
            t.dialect_impl(dialect).bind_processor(dialect) for t in self.columns.values()
        ]
        encoded = [
            [v if p is None or v is None else p(v) for v, p in zip(row, processors, strict=True)]
            for row in rows
        ]
        return {self.name: json.dumps(encoded, separators=(",", ":"))}

    def _array(self, column: str) -> str:
        return f"{self.name}_{column}"


def checked_after_lookup(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """`condition`, as a check of rows already found by their keys, never a way in.

    The statements that take bound rows (and the claim's read) find their rows by key,
    then check each one's state (`status = 'prepared'`). PostgreSQL would rather read
    the state's index when its statistics say few rows have that state, and they lag:
    taken before a bulk enrollment's emails were claimed, they say no message is
    `prepared` while thousands are, and each hand-over then read every one of them
    (docs/benchmarks.md, the fourteenth session). `(condition) IS TRUE` means the same
    for every row (a null check is not true either way) and matches no index, so the
    keys alone lead."""
    return condition.is_(True)


def _is_json(type_: TypeEngine[Any]) -> bool:
    return isinstance(type_, JSON)
