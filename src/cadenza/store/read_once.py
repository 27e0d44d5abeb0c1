"""Lookups a transaction that asks for it makes once, however often its code asks.

The worker's hand-over commit records many sends at once (services/delivery/
handover.py), and recording each one asks which webhooks and automation rules listen
(events_out): the same answer every time within that transaction, which creates no
webhook and no rule. Asked within `read_once(connection)`, such a lookup runs on the
first ask and is answered from memory after that; outside it (every other use case,
which may create a webhook and emit in the same transaction) it runs every time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection

_KEY = "cadenza.read_once"
T = TypeVar("T")


@contextmanager
def read_once(connection: Connection) -> Iterator[None]:
    """Within this block, `once` answers each lookup from its first run on `connection`."""
    connection.info[_KEY] = {}
    try:
        yield
    finally:
        connection.info.pop(_KEY, None)  # the info outlives the transaction (the pool's)


def once(connection: Connection, name: str, read: Callable[[], T]) -> T:
    """`read()`, or within `read_once` the answer of its first run under `name`."""
    answers: dict[str, Any] | None = connection.info.get(_KEY)
    if answers is None:
        return read()
    if name not in answers:
        answers[name] = read()
    return answers[name]
