"""A/B variants on the analytics page: each variant's outcomes at its step, a 95% Wilson
interval for its reply rate, and a test of whether the variants' reply rates differ.

Sends, deliveries and replies come from services/sequences/variants.py (the very counts
the winner rule decides on), opens and clicks from engagement.py; the statistics from
SciPy: `binomtest(...).proportion_ci(method="wilson")` for the intervals, Fisher's exact
test for two variants and Pearson's chi-square test of independence for three to five
(docs/analytics.md). Rates and tests are over delivered emails, as everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cadenza.domain.rates import email_rates
from cadenza.domain.variants import VariantTally
from cadenza.services.analytics.engagement import Engagement, engagement_by_variant
from cadenza.services.context import Context
from cadenza.services.sequences.catalog import load_sequence, step_specs
from cadenza.services.sequences.variants import variant_tallies, winners

CONFIDENCE = 0.95


@dataclass(frozen=True)
class VariantOutcome:
    label: str
    subject: str | None  # the variant's own subject, else the step's
    sent: int = 0
    delivered: int = 0
    bounced: int = 0
    opened: int = 0
    clicked: int = 0
    replied: int = 0
    # 95% Wilson interval of the reply rate; None before anything was delivered.
    reply_rate_interval: tuple[float, float] | None = None

    @property
    def rates(self) -> dict[str, float | None]:
        return email_rates(
            sent=self.sent, delivered=self.delivered, bounced=self.bounced,
            opened=self.opened, clicked=self.clicked, replied=self.replied,
        )  # fmt: skip


@dataclass(frozen=True)
class VariantSplit:
    """One step's variants side by side."""

    position: int
    variants: list[VariantOutcome] = field(default_factory=list)
    test: str | None = None  # "fisher" or "chi-square"; None while it cannot be computed
    p_value: float | None = None
    winner_after: int | None = None
    winner: str | None = None
    decided_at: datetime | None = None


def variant_splits(ctx: Context, sequence_id: int) -> dict[int, VariantSplit]:
    """Step position -> its split, for the steps that have variants now or had sends of
    variants (a step since changed keeps the figures of what was sent)."""
    with ctx.db.read() as session:
        specs = {s.position: s for s in step_specs(load_sequence(session, sequence_id))}
        tallies = variant_tallies(session, sequence_id)
        decided = {
            p: (row.label, row.decided_at) for p, row in winners(session, sequence_id).items()
        }
    labels: dict[int, list[str]] = {
        p: [v.label for v in s.variants] for p, s in specs.items() if s.variants
    }
    for position, label in tallies:
        if label not in labels.setdefault(position, []):
            labels[position].append(label)
    if not labels:
        return {}  # no variants, nor any sent: no engagement query
    seen = engagement_by_variant(ctx, sequence_id)
    splits = {}
    for position, names in sorted(labels.items()):
        spec = specs.get(position)
        subjects = {v.label: v.subject or spec.subject for v in spec.variants} if spec else {}
        outcomes = [
            _outcome(
                label,
                subjects.get(label),
                tallies.get((position, label), VariantTally(label, 0, 0, 0)),
                seen.get((position, label), Engagement()),
            )
            for label in sorted(names)
        ]
        test, p_value = reply_test([(o.replied, o.delivered) for o in outcomes])
        winner, decided_at = decided.get(position, (None, None))
        splits[position] = VariantSplit(
            position=position,
            variants=outcomes,
            test=test,
            p_value=p_value,
            winner_after=spec.winner_after if spec else None,
            winner=winner,
            decided_at=decided_at,
        )
    return splits


def _outcome(
    label: str, subject: str | None, tally: VariantTally, seen: Engagement
) -> VariantOutcome:
    return VariantOutcome(
        label=label,
        subject=subject,
        sent=tally.sent,
        delivered=tally.delivered,
        bounced=tally.sent - tally.delivered,
        opened=seen.opened,
        clicked=seen.clicked,
        replied=tally.replied,
        reply_rate_interval=wilson_interval(tally.replied, tally.delivered),
    )


def wilson_interval(successes: int, trials: int) -> tuple[float, float] | None:
    """The 95% Wilson score interval of successes / trials (None for no trials)."""
    if trials <= 0:
        return None
    from scipy import stats  # imported when a test is asked for: it costs every start

    ci = stats.binomtest(successes, trials).proportion_ci(CONFIDENCE, method="wilson")
    return round(float(ci.low), 4), round(float(ci.high), 4)


def reply_test(counts: list[tuple[int, int]]) -> tuple[str | None, float | None]:
    """Whether reply rates differ: (test, p-value) over (replied, delivered) per variant.

    Two variants: Fisher's exact test (exact at the small counts a sales team has).
    Three or more: the chi-square test of independence. (None, None) while a variant has
    nothing delivered, or nobody (or everybody) replied: no test can say anything yet.
    """
    from scipy import stats

    table = [[replied, delivered - replied] for replied, delivered in counts]
    if len(table) < 2 or any(d <= 0 for _, d in counts):
        return None, None
    if not any(r for r, _ in table) or not any(n for _, n in table):
        return None, None
    if len(table) == 2:
        return "fisher", round(float(stats.fisher_exact(table).pvalue), 4)
    return "chi-square", round(float(stats.chi2_contingency(table).pvalue), 4)
