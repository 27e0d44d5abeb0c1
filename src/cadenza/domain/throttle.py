"""Send slots for one mailbox: spacing that keeps every 60-second window under the limit.

A mailbox with a limit of L per minute sends at most one email every 60/L seconds;
first steps of a bulk enrollment use 3 per minute. Spacing (rather than bursts of L
then a pause) is what mailbox providers expect from a person, and it makes "at most
L in any 60 seconds" hold by construction, across any number of workers, because the
next free slot is one column of the mailbox row that only the claim holding the
mailbox updates (services/delivery/claims.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

BULK_FIRST_STEP_PER_MINUTE = 3


def spacing(per_minute_limit: int, *, bulk_first: bool) -> timedelta:
    limit = per_minute_limit
    if bulk_first:
        limit = min(limit, BULK_FIRST_STEP_PER_MINUTE)
    return timedelta(seconds=60 / max(limit, 1))


@dataclass(frozen=True)
class SlotPlan:
    slots: list[datetime]  # one per granted item, in order
    next_free: datetime  # the mailbox's next free slot after these


def most_slots(
    *,
    next_free: datetime | None,
    now: datetime,
    horizon: datetime,
    per_minute_limit: int,
    daily_room: int,
) -> int:
    """The most slots plan_slots can grant before `horizon` (every item at the shortest
    spacing): how many due items a claim needs to read."""
    first = max(next_free or now, now)
    if first > horizon:
        return 0
    step = spacing(per_minute_limit, bulk_first=False)
    return max(0, min(int((horizon - first) / step) + 1, daily_room))


def plan_slots(
    *,
    next_free: datetime | None,
    now: datetime,
    horizon: datetime,
    per_minute_limit: int,
    bulk_first: list[bool],
    daily_room: int,
    due: list[datetime] | None = None,
) -> SlotPlan:
    """Grants slots, in order, to as many items as fit before `horizon` and the daily room.

    Each item waits the spacing of its own kind after the one before, so a bulk first
    step is followed by a 20-second gap even when the next email is a follow-up.
    `due`: when each item falls due (missing: now). An item claimed ahead of its due time
    gets a slot no sooner than it, so that its session can be opened and its message
    composed before it, but it never leaves early.
    """
    free = max(next_free or now, now)
    slot = free
    slots: list[datetime] = []
    for i, is_bulk in enumerate(bulk_first[: max(daily_room, 0)]):
        at = max(slot, due[i]) if due is not None and i < len(due) else slot
        if at > horizon:
            break
        slots.append(at)
        slot = at + spacing(per_minute_limit, bulk_first=is_bulk)
    return SlotPlan(slots, slot if slots else free)
