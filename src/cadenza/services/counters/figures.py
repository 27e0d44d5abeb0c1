"""What a page reads: one sequence's counters, summed.

One range of `ix_sequence_counts_sequence`: the sequence's folded rows (one per key)
and the deltas written since the last fold, whatever the number of its enrollments. A
read that finds many deltas folds them afterwards, so the next one is short again even
where no worker runs the fold job.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadenza.domain.counters import STEP_PREFIX, WHOLE_SEQUENCE
from cadenza.services.context import Context
from cadenza.services.counters.upkeep import FOLD_AT, fold
from cadenza.store.models import SequenceCount


@dataclass(frozen=True)
class Figures:
    """(step position, variant, key) -> n; position 0 holds the whole sequence's."""

    counts: dict[tuple[int, str, str], int] = field(default_factory=dict)

    def whole(self, key: str) -> int:
        return self.step(WHOLE_SEQUENCE, key)

    def step(self, position: int, key: str) -> int:
        """Summed over the step's variants."""
        return sum(n for (p, _, k), n in self.counts.items() if p == position and k == key)

    def variants(self, key: str) -> dict[tuple[int, str], int]:
        """(position, variant) -> n of `key`, for the runs that had a variant."""
        return {(p, v): n for (p, v, k), n in self.counts.items() if v and k == key and n}

    def positions(self, key: str) -> dict[int, int]:
        """Position -> n of `key`, summed over variants, where not 0."""
        found: dict[int, int] = defaultdict(int)
        for (p, _, k), n in self.counts.items():
            if k == key:
                found[p] += n
        return {p: n for p, n in found.items() if n}

    def with_prefix(self, prefix: str) -> dict[str, int]:
        """The whole sequence's keys that start with `prefix`, without it."""
        return {
            k[len(prefix) :]: n
            for (p, _, k), n in self.counts.items()
            if p == WHOLE_SEQUENCE and k.startswith(prefix) and n
        }

    def step_types(self) -> dict[int, str]:
        """Position -> the type of its runs, for every position that has runs."""
        types: dict[int, set[str]] = defaultdict(set)
        for (position, _, key), n in self.counts.items():
            if key.startswith(STEP_PREFIX) and n:
                types[position].add(key[len(STEP_PREFIX) :])
        return {position: min(found) for position, found in types.items()}


def sequence_figures(ctx: Context, sequence_id: int) -> Figures:
    with ctx.db.read() as session:
        figures, read = _figures(session, sequence_id)
    _fold_when_long(ctx, sequence_id, read, len(figures.counts))
    return figures


def figures_in(session: Session, sequence_id: int) -> Figures:
    """In the caller's transaction (its own deltas included): what the enrollment's
    winner rule decides on."""
    return _figures(session, sequence_id)[0]


def _figures(session: Session, sequence_id: int) -> tuple[Figures, int]:
    rows = session.execute(
        select(
            SequenceCount.step_position,
            SequenceCount.variant,
            SequenceCount.key,
            func.sum(SequenceCount.n),
            func.count(),
        )
        .where(SequenceCount.sequence_id == sequence_id, SequenceCount.day.is_(None))
        .group_by(SequenceCount.step_position, SequenceCount.variant, SequenceCount.key)
    ).all()
    figures = Figures({(p, v, k): int(n) for p, v, k, n, _ in rows})
    return figures, sum(r[4] for r in rows)


def daily_figures(ctx: Context, sequence_id: int, since: date) -> dict[tuple[date, str], int]:
    """(UTC day, key) -> n for the sequence's days from `since` on."""
    with ctx.db.read() as session:
        rows = session.execute(
            select(SequenceCount.day, SequenceCount.key, func.sum(SequenceCount.n), func.count())
            .where(SequenceCount.sequence_id == sequence_id, SequenceCount.day >= since)
            .group_by(SequenceCount.day, SequenceCount.key)
        ).all()
    _fold_when_long(ctx, sequence_id, sum(r[3] for r in rows), len(rows))
    return {(day, key): int(n) for day, key, n, _ in rows if day is not None}


def _fold_when_long(ctx: Context, sequence_id: int, read: int, keys: int) -> None:
    """Many more rows than keys: deltas accumulated since the last fold."""
    if read > max(FOLD_AT, 2 * keys):
        with ctx.db.transaction() as session:
            fold(session, sequence_id)
