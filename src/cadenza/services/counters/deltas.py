"""Writing a sequence's counter deltas: one function per kind of counted change.

Each takes the state a row had and the state it gets (None: the row is new, or goes)
and writes -1 for the old figure and +1 for the new one, only where a figure changes.
Callers pass the old state they hold (a row they locked, or a guarded statement's
answer), never a state read again here, so a figure moves exactly when its fact does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from cadenza.domain.counters import (
    DAY_ENROLLED,
    NO_VARIANT,
    WHOLE_SEQUENCE,
    enrollment_key,
    run_status_key,
    step_type_key,
    task_status_key,
    utc_day,
)
from cadenza.domain.enums import EnrollmentState
from cadenza.store.bound_rows import BoundRows
from cadenza.store.models import Enrollment, SequenceCount, StepRun
from cadenza.store.prepared import Prepared

EnrollmentFact = tuple[str, str | None]  # (state, reason)


@dataclass(frozen=True)
class Delta:
    sequence_id: int
    step_position: int
    variant: str
    key: str
    n: int
    day: date | None = None  # the daily series' UTC day


@dataclass(frozen=True)
class StepOf:
    """Where a step run's figures go: its sequence, position, variant and type."""

    sequence_id: int
    position: int
    variant: str
    step_type: str

    @classmethod
    def of(cls, run: StepRun, sequence_id: int) -> StepOf:
        return cls(sequence_id, run.step_position, run.variant or NO_VARIANT, run.step_type)


def step_of_run(session: Session, run_id: int) -> StepOf:
    sequence_id, position, variant, step_type = session.execute(
        select(Enrollment.sequence_id, StepRun.step_position, StepRun.variant, StepRun.step_type)
        .join(Enrollment, Enrollment.id == StepRun.enrollment_id)
        .where(StepRun.id == run_id)
    ).one()
    return StepOf(sequence_id, position, variant or NO_VARIANT, step_type)


def enrolled(bind: Session | Connection, sequence_id: int, enrolled_at: datetime) -> None:
    """A new enrollment: active, and one more on its day's chart."""
    day = Delta(sequence_id, WHOLE_SEQUENCE, NO_VARIANT, DAY_ENROLLED, 1, utc_day(enrolled_at))
    add(bind, [day])
    enrollment_moved(bind, sequence_id, None, (EnrollmentState.ACTIVE, None))


def enrollment_moved(
    bind: Session | Connection,
    sequence_id: int,
    was: EnrollmentFact | None,
    now: EnrollmentFact | None,
) -> None:
    """An enrollment changed state (was/now None: it is new, or it goes)."""
    keys = [(enrollment_key(*fact) if fact else None) for fact in (was, now)]
    if keys[0] == keys[1]:
        return
    _moved(bind, sequence_id, WHOLE_SEQUENCE, NO_VARIANT, *keys)


def run_moved(bind: Session | Connection, step: StepOf, was: str | None, now: str | None) -> None:
    """A step run was created (was None), changed status, or was erased (now None)."""
    if was is None or now is None:  # the step's type: the figures of positions no
        n = 1 if was is None else -1  # longer in the sequence show it from their runs
        add(bind, [_delta(step, step_type_key(step.step_type), n)])
    _moved(
        bind, step.sequence_id, step.position, step.variant,
        run_status_key(was) if was else None, run_status_key(now) if now else None,
    )  # fmt: skip


def task_moved(bind: Session | Connection, step: StepOf, was: str | None, now: str | None) -> None:
    """A step's task was created (was None), changed status, or was erased (now None)."""
    _moved(
        bind, step.sequence_id, step.position, step.variant,
        task_status_key(was) if was else None, task_status_key(now) if now else None,
    )  # fmt: skip


def _moved(
    bind: Session | Connection,
    sequence_id: int,
    position: int,
    variant: str,
    was: str | None,
    now: str | None,
) -> None:
    if was == now:
        return
    deltas = [
        Delta(sequence_id, position, variant, key, n)
        for key, n in ((was, -1), (now, 1))
        if key is not None
    ]
    add(bind, deltas)


def _delta(step: StepOf, key: str, n: int) -> Delta:
    return Delta(step.sequence_id, step.position, step.variant, key, n)


# Compiled once: the worker's every send writes some (store/prepared.py), all of a
# commit's in one statement (store/bound_rows.py).
_ROWS = BoundRows.of(
    "deltas", SequenceCount, "sequence_id", "step_position", "variant", "day", "key", "n"
)
_INSERT = Prepared(build=lambda dialect: _ROWS.inserted(SequenceCount, dialect))


def _write(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """The rows, in one statement."""
    if rows:
        _INSERT.run(connection, _ROWS.bind(
            [[row[column] for column in _ROWS.columns] for row in rows], connection.dialect
        ))  # fmt: skip


def add(bind: Session | Connection, deltas: Iterable[Delta]) -> None:
    """The one insert of counter rows, in the caller's transaction: all of a call's
    rows in one statement (`_write`), not a statement each;
    inside `batched`, all of the block's rows at its end."""
    rows = [d.__dict__ for d in deltas if d.n]
    if rows:
        connection = bind.connection() if isinstance(bind, Session) else bind
        kept = connection.info.get(_KEPT)
        if kept is not None:
            kept.extend(rows)
        else:
            _write(connection, rows)


_KEPT = "cadenza.counter_deltas"


@contextmanager
def batched(connection: Connection) -> Iterator[None]:
    """The counter rows written on this connection within the block are inserted at
    its end, in one statement, still inside the caller's transaction: the worker
    records many sends in one commit, each moving three or four figures (bench/
    latency.py). Nothing is written when the block raises (its transaction is rolled
    back); the keeping ends with the block either way, since `Connection.info` outlives
    the checkout."""
    kept: list[dict[str, Any]] = []
    connection.info[_KEPT] = kept
    try:
        yield
    finally:
        connection.info.pop(_KEPT, None)
    if kept:
        _write(connection, _summed(kept))


def _summed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The block's rows with one row per figure: the sum of its deltas, none where they
    cancel out. Figures are sums of their rows (read and folded as such), so this
    changes no figure; a commit recording ten sends of one step writes its five
    figures once each rather than fifty rows."""
    sums: dict[tuple[Any, ...], int] = {}
    for row in rows:
        figure = (row["sequence_id"], row["step_position"], row["variant"], row["day"], row["key"])
        sums[figure] = sums.get(figure, 0) + row["n"]
    return [
        {"sequence_id": s, "step_position": p, "variant": v, "day": d, "key": k, "n": n}
        for (s, p, v, d, k), n in sums.items()
        if n
    ]
