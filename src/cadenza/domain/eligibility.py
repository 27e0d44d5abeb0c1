"""Whether a contact may be enrolled: the per-contact refusal rules of DESIGN §4, in order."""

from __future__ import annotations

from dataclasses import dataclass

from cadenza.domain.errors import ErrorCode


@dataclass(frozen=True)
class ContactFacts:
    email: str | None
    email_valid: bool
    bounced: bool
    unsubscribed: bool
    blocked: bool
    live_enrollment_sequence_ids: frozenset[int]


@dataclass(frozen=True)
class Refusal:
    code: ErrorCode
    message: str


def refusal_for(
    facts: ContactFacts, sequence_id: int, *, allow_multiple_sequences: bool
) -> Refusal | None:
    """The first rule the contact breaks, or None; the order puts permanent reasons first."""
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
    if sequence_id in facts.live_enrollment_sequence_ids:
        return Refusal(ErrorCode.ALREADY_ENROLLED, "the contact is already in this sequence")
    if facts.live_enrollment_sequence_ids and not allow_multiple_sequences:
        other = min(facts.live_enrollment_sequence_ids)
        return Refusal(
            ErrorCode.ALREADY_ENROLLED,
            f"the contact is already enrolled in another sequence (#{other})",
        )
    return None
