"""A/B variants: each variant's figures at a step, and the winner rule's decisions.

The figures are read here, from the sequence's counters (services/counters), because
two callers need the same numbers: the analytics page (services/analytics,
which adds opens and clicks) and the enrollment that asks the winner rule. Winners are
rows of `step_variant_winners`, keyed by step position like the step statistics.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cadenza.domain.counters import BOUNCED, REPLIED, run_status_key
from cadenza.domain.enums import StepRunStatus
from cadenza.domain.steps import StepSpec
from cadenza.domain.variants import VariantTally, winner
from cadenza.services.counters.figures import figures_in
from cadenza.store.models import StepVariantWinner

VariantKey = tuple[int, str]  # (step position, label)


def variant_tallies(session: Session, sequence_id: int) -> dict[VariantKey, VariantTally]:
    """Sent, delivered and replied per (step position, variant), for every variant sent:
    the sequence's counters (services/counters), in the caller's transaction."""
    figures = figures_in(session, sequence_id)
    bounced = figures.variants(BOUNCED)
    replied = figures.variants(REPLIED)
    return {
        key: VariantTally.of_counts(key[1], n, bounced.get(key, 0), replied.get(key, 0))
        for key, n in figures.variants(str(run_status_key(StepRunStatus.SENT))).items()
    }


def winners(session: Session, sequence_id: int) -> dict[int, StepVariantWinner]:
    rows = session.scalars(
        select(StepVariantWinner).where(StepVariantWinner.sequence_id == sequence_id)
    )
    return {row.step_position: row for row in rows}


def decide_winners(
    session: Session, sequence_id: int, specs: list[StepSpec], now: datetime, *, record: bool
) -> dict[int, str]:
    """Step position -> the label every new enrollment gets there, for steps whose rule
    has decided. A rule not yet decided is asked now (domain/variants.winner) and, when
    it decides and `record` (not a dry run), the decision is stored with its figures."""
    if not any(s.variants for s in specs):
        return {}  # no step has variants: no decision to read (a query an enrollment saved)
    decided = {p: row.label for p, row in winners(session, sequence_id).items()}
    pending = [s for s in specs if s.variants and s.winner_after and s.position not in decided]
    if not pending:
        return {p: label for p, label in decided.items() if _has_label(specs, p, label)}
    tallies = variant_tallies(session, sequence_id)
    for spec in pending:
        figures = [
            tallies.get((spec.position, v.label), VariantTally(v.label, 0, 0, 0))
            for v in spec.variants
        ]
        label = winner(figures, spec.winner_after or 0)
        if label is None:
            continue
        decided[spec.position] = label
        if record:
            _record(session, sequence_id, spec.position, label, figures, now)
    return {p: label for p, label in decided.items() if _has_label(specs, p, label)}


def _has_label(specs: list[StepSpec], position: int, label: str) -> bool:
    return any(s.position == position and label in {v.label for v in s.variants} for s in specs)


def _record(
    session: Session,
    sequence_id: int,
    position: int,
    label: str,
    figures: list[VariantTally],
    now: datetime,
) -> None:
    row = StepVariantWinner(
        sequence_id=sequence_id,
        step_position=position,
        label=label,
        decided_at=now,
        tallies={
            t.label: {"sent": t.sent, "delivered": t.delivered, "replied": t.replied}
            for t in figures
        },
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        pass  # a concurrent enrollment recorded it first, from the same figures


def clear_changed_winners(
    session: Session, sequence_id: int, before: list[StepSpec], after: list[StepSpec]
) -> None:
    """A saved sequence keeps a step's winner only while that step's content, variants
    and rule are unchanged: a new test starts from no decision."""
    old = {s.position: s for s in before}
    new = {s.position: s for s in after}
    stale = [
        position
        for position in winners(session, sequence_id)
        if position not in new or _test_of(old.get(position)) != _test_of(new[position])
    ]
    if stale:
        session.execute(
            delete(StepVariantWinner).where(
                StepVariantWinner.sequence_id == sequence_id,
                StepVariantWinner.step_position.in_(stale),
            )
        )


def _test_of(spec: StepSpec | None) -> tuple[object, ...] | None:
    if spec is None:
        return None
    return (spec.subject, spec.body, spec.variants, spec.winner_after)
