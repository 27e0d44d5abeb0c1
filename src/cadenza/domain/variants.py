"""A/B variants of an email step: their shape, who gets which, and when one wins.

A step with variants holds 2 to 5 of them, labelled A, B, C... in order. A variant
without its own subject or body uses the step's, so a test of two subject lines needs
only the subjects. Pure rules, no I/O: the enrollment service assigns, the analytics
service counts, the engine never needs to know (a snapshot holds the assigned text).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

LABELS = "ABCDE"
MIN_VARIANTS, MAX_VARIANTS = 2, 5
# The winner rule: after this many sends of every variant, at most (a bound, not a goal).
MAX_WINNER_AFTER = 100_000
VARIANT_KEYS = {"label", "subject", "body"}


@dataclass(frozen=True)
class Variant:
    label: str
    subject: str | None = None  # None: the step's own
    body: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "subject": self.subject, "body": self.body}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Variant:
        return cls(str(data["label"]), data.get("subject"), data.get("body"))


def assigned_label(labels: Sequence[str], sequence_id: int, contact_id: int, position: int) -> str:
    """The variant a contact gets at one step: uniform over `labels`, and stable.

    The seed is sha256 of "sequence:contact:position", so the same contact gets the same
    variant of a step each time it is enrolled in that sequence (a re-enrollment never
    shows it the other subject line), steps draw independently, and nothing random is
    stored or needed to reproduce the split.
    """
    digest = hashlib.sha256(f"{sequence_id}:{contact_id}:{position}".encode()).digest()
    return labels[int.from_bytes(digest[:8], "big") % len(labels)]


@dataclass(frozen=True)
class VariantTally:
    """One variant's figures at one step, as the analytics define them (docs/analytics.md):
    delivered = sent and not hard-bounced; replied counts enrollments."""

    label: str
    sent: int
    delivered: int
    replied: int

    @classmethod
    def of_counts(cls, label: str, sent: int, bounced: int, replied: int) -> VariantTally:
        """From the counters. A reply proves its email arrived: an email that bounced and
        was answered anyway (a bounce later undone, a server that refused, then took it)
        counts as delivered, so replies never outnumber deliveries. A rate over 1 would
        be wrong, and the interval and tests over it refuse such counts (the sequence's
        report then failed)."""
        delivered = min(sent, max(sent - bounced, replied))
        return cls(label, sent=sent, delivered=delivered, replied=min(replied, delivered))

    @property
    def reply_rate(self) -> Fraction:
        return Fraction(self.replied, self.delivered) if self.delivered else Fraction(0)


def winner(tallies: Sequence[VariantTally], after: int) -> str | None:
    """The variant that takes every new enrollment, or None to keep splitting.

    Decided once every variant has at least `after` sends: the highest reply rate
    (replied / delivered, the rate the analytics page shows) wins. A tie at the top
    decides nothing (the split goes on and the rule is asked again with the next
    enrollment). Rates are compared as exact fractions, so the answer never depends on
    floating point or on the order given.
    """
    if len(tallies) < MIN_VARIANTS or any(t.sent < max(after, 1) for t in tallies):
        return None
    rates = {t.label: t.reply_rate for t in tallies}
    top = max(rates.values())
    leaders = [label for label, rate in rates.items() if rate == top]
    return leaders[0] if len(leaders) == 1 else None
