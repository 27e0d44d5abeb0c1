"""Rates as every analytics figure shows them: a part over a whole, to four places, and
None when there is no whole (nothing sent is not a 0% rate). One definition for a
sequence, a step and an A/B variant, so their figures compare."""

from __future__ import annotations


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def email_rates(
    *, sent: int, delivered: int, bounced: int, opened: int, clicked: int, replied: int
) -> dict[str, float | None]:
    """Per email: deliveries and bounces of what was sent, the rest of what arrived."""
    return {
        "delivery_rate": rate(delivered, sent),
        "bounce_rate": rate(bounced, sent),
        "open_rate": rate(opened, delivered),
        "click_rate": rate(clicked, delivered),
        "reply_rate": rate(replied, delivered),
    }
