"""Keeping the counters short and true: folding deltas, rebuilding from the rows, and
taking an erased contact's figures away.

Folding replaces a sequence's rows by one row per key holding their sum, in one
transaction: a `DELETE ... RETURNING` of the rows, then the insert of their sums. The
sums are of exactly the rows that statement deleted, so a delta inserted meanwhile by
another transaction (not yet visible to it) stays, to be summed on read and folded
next time; two folds of one sequence at once delete each row once (the second waits
on the first's row locks and skips what it deleted). Readers see the rows before or
after, never half: the sum is the same.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select, text, true
from sqlalchemy.orm import Session

from cadenza.services.context import Context
from cadenza.services.counters.deltas import add
from cadenza.services.counters.tally import Key, as_deltas, tally
from cadenza.store.models import Enrollment, SequenceCount

# A sequence with more rows than this is folded (by the worker, and by a page reading it).
FOLD_AT = 200
FOLD_EVERY = timedelta(minutes=5)
_next_fold: dict[object, datetime] = {}
_folded_up_to: dict[object, int] = {}  # the last row id the fold job looked at, per database


def fold(session: Session, sequence_id: int) -> int:
    """Folds one sequence's rows in the caller's transaction; returns the rows left."""
    rows = session.execute(
        delete(SequenceCount)
        .where(SequenceCount.sequence_id == sequence_id)
        .returning(
            SequenceCount.step_position,
            SequenceCount.variant,
            SequenceCount.key,
            SequenceCount.day,
            SequenceCount.n,
        )
        .execution_options(synchronize_session=False)
    ).all()
    sums: Counter[Key] = Counter()
    for position, variant, key, day, n in rows:
        sums[sequence_id, position, variant, key, day] += n
    deltas = as_deltas(sums)
    add(session, deltas)
    return len(deltas)


def fold_due(ctx: Context, limit: int = 50) -> int:
    """The worker's job, at most every FOLD_EVERY per process: folds the sequences that
    got more than FOLD_AT rows since this process last looked. It reads only those rows
    (a range of the key, from where it stopped), never the whole table: the folded rows
    of every sequence's days stay where they are. Returns how many were folded."""
    now = ctx.clock.now()
    if now < _next_fold.get(ctx.db, now - timedelta(seconds=1)):
        return 0
    _next_fold[ctx.db] = now + FOLD_EVERY
    since = _folded_up_to.get(ctx.db, 0)
    with ctx.db.read() as session:  # counted here: a GROUP BY would walk another index
        news = Counter(
            session.scalars(select(SequenceCount.sequence_id).where(SequenceCount.id > since))
        )
    due = [sequence_id for sequence_id, n in news.most_common(limit) if n > FOLD_AT]
    for sequence_id in due:
        with ctx.db.transaction() as session:
            fold(session, sequence_id)
    with ctx.db.read() as session:  # after the folds: their own rows are not news
        _folded_up_to[ctx.db] = session.scalar(select(func.max(SequenceCount.id))) or since
    return len(due)


def rebuild(ctx: Context, sequence_id: int | None = None) -> int:
    """Recounts the counters of one sequence (or all) from the rows: after rows were
    written around the services (bench/large.py, a manual repair). Returns the rows
    written. On PostgreSQL the table is locked against new deltas meanwhile, so a fact
    changed concurrently is counted once: by the rows if it committed before, by its
    own delta after."""
    where: ColumnElement[bool] = (
        true() if sequence_id is None else Enrollment.sequence_id == sequence_id
    )
    with ctx.db.transaction() as session:
        if ctx.db.dialect == "postgresql":
            session.execute(text("LOCK TABLE sequence_counts IN EXCLUSIVE MODE"))
        dropped = delete(SequenceCount).execution_options(synchronize_session=False)
        if sequence_id is not None:
            dropped = dropped.where(SequenceCount.sequence_id == sequence_id)
        session.execute(dropped)  # first: on SQLite the write lock, then the reads
        deltas = as_deltas(tally(session, where))
        add(session, deltas)
    return len(deltas)


def erase(session: Session, enrollments: ColumnElement[bool]) -> None:
    """Before these enrollments' rows are deleted (a contact's erasure): their figures
    go with them, as they would from a count of the rows that remain."""
    add(session, as_deltas(tally(session, enrollments), sign=-1))
