"""Whether a contact may be enrolled: the per-contact refusal rules of DESIGN §4, in order,
then the enrollment rules a sequence (or the installation) sets (docs/enrollment.md,
"Enrollment rules"): exclusivity, re-enrollment and the days since last emailed.

The hard refusals (no address, bounced, unsubscribed, blocked, already live in this
sequence) are never set aside. The enrollment rules are `overridable`: a user with the
permission may enroll a contact they refuse, and the audit log says which rules were set
aside. The facts come from the enroll service in bulk; this module only decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cadenza.domain.enums import Exclusivity, Reenrollment
from cadenza.domain.errors import ErrorCode
from cadenza.domain.sequence_settings import EnrollmentRules


@dataclass(frozen=True)
class LiveEnrollment:
    """A live (active or paused) enrollment of the contact, with its sequence's rule on
    other sequences (the sequence's own setting or the installation's default)."""

    enrollment_id: int
    sequence_id: int
    sequence_name: str
    exclusivity: Exclusivity


@dataclass(frozen=True)
class ContactFacts:
    email: str | None
    email_valid: bool
    bounced: bool
    unsubscribed: bool
    blocked: bool
    live: tuple[LiveEnrollment, ...] = ()
    enrolled_before: bool = False  # any enrollment in this sequence, ever, in any state
    last_emailed_at: datetime | None = None  # by any sequence

    @property
    def live_enrollment_sequence_ids(self) -> frozenset[int]:
        return frozenset(e.sequence_id for e in self.live)

    def live_in(self, sequence_id: int) -> LiveEnrollment | None:
        return next((e for e in self.live if e.sequence_id == sequence_id), None)


@dataclass(frozen=True)
class Refusal:
    code: ErrorCode
    message: str
    overridable: bool = False  # an enrollment rule, not a hard refusal
    details: dict[str, Any] = field(default_factory=dict)


def hard_refusal(facts: ContactFacts, sequence_id: int, rules: EnrollmentRules) -> Refusal | None:
    """The first rule no one may set aside; the order puts permanent reasons first."""
    if not facts.email:
        return Refusal(ErrorCode.MISSING_EMAIL, "the contact has no email address")
    if not facts.email_valid:
        return Refusal(ErrorCode.INVALID_EMAIL, f"{facts.email!r} is not a valid email address")
    if facts.bounced:
        return Refusal(ErrorCode.BOUNCED, "an earlier email to this contact bounced")
    if facts.unsubscribed:
        return Refusal(ErrorCode.UNSUBSCRIBED, "the contact unsubscribed")
    if facts.blocked:
        return Refusal(ErrorCode.BLOCKED, "the contact's address or domain is blocked")
    if facts.live_in(sequence_id) is not None and rules.reenrollment is not Reenrollment.ANY_TIME:
        return Refusal(ErrorCode.ALREADY_ENROLLED, "the contact is already in this sequence")
    return None


def rule_refusals(
    facts: ContactFacts, sequence_id: int, rules: EnrollmentRules, now: datetime
) -> list[Refusal]:
    """Every enrollment rule the contact breaks (all of them, so an override can record
    each one it set aside). `rules` are resolved: no None left."""
    refusals = []
    other = _exclusive_conflict(facts, sequence_id, rules.exclusivity or Exclusivity.NONE)
    if other is not None:
        refusals.append(other)
    if (
        rules.reenrollment is Reenrollment.ONCE
        and facts.enrolled_before
        and facts.live_in(sequence_id) is None
    ):
        refusals.append(
            Refusal(
                ErrorCode.ENROLLED_BEFORE,
                "the contact was enrolled in this sequence before, and it enrolls a contact once",
                overridable=True,
            )
        )
    days = rules.min_days_since_emailed or 0
    if (
        days
        and facts.last_emailed_at is not None
        and now - facts.last_emailed_at < timedelta(days=days)
    ):
        when = facts.last_emailed_at
        refusals.append(
            Refusal(
                ErrorCode.CONTACTED_RECENTLY,
                f"the contact was last emailed by a sequence on {when:%Y-%m-%d} (UTC), "
                f"less than {days} day{'s' if days != 1 else ''} ago",
                overridable=True,
                details={
                    "last_emailed_at": when.isoformat(),
                    "min_days_since_emailed": days,
                    "eligible_from": (when + timedelta(days=days)).isoformat(),
                },
            )
        )
    return refusals


def _exclusive_conflict(
    facts: ContactFacts, sequence_id: int, exclusivity: Exclusivity
) -> Refusal | None:
    """A live enrollment elsewhere that this sequence's rule, or that sequence's own,
    forbids: this one admits no other (`any`), that one admits no other (`any`), or both
    are `exclusive`. The lowest sequence id is named, so the answer is stable."""
    others = sorted(
        (e for e in facts.live if e.sequence_id != sequence_id), key=lambda e: e.sequence_id
    )
    for other in others:
        if exclusivity is Exclusivity.ANY:
            why = "this sequence admits no contact who is in another one"
        elif other.exclusivity is Exclusivity.ANY:
            why = "that sequence admits no other sequence at the same time"
        elif exclusivity is Exclusivity.EXCLUSIVE and other.exclusivity is Exclusivity.EXCLUSIVE:
            why = "both sequences are exclusive"
        else:
            continue
        return Refusal(
            ErrorCode.IN_ANOTHER_SEQUENCE,
            f"the contact is in sequence {other.sequence_name!r} (#{other.sequence_id}): {why}",
            overridable=True,
            details={"sequence_id": other.sequence_id, "sequence_name": other.sequence_name},
        )
    return None


def refusal_for(
    facts: ContactFacts, sequence_id: int, rules: EnrollmentRules, now: datetime
) -> Refusal | None:
    """The first rule the contact breaks, hard ones first, or None."""
    hard = hard_refusal(facts, sequence_id, rules)
    if hard is not None:
        return hard
    refusals = rule_refusals(facts, sequence_id, rules, now)
    return refusals[0] if refusals else None
