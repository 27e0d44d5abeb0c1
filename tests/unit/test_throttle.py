"""Send slots for one mailbox (domain/throttle.py): spacing, the horizon, the daily room."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cadenza.domain.throttle import BULK_FIRST_STEP_PER_MINUTE, plan_slots, spacing

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def plan(*, next_free=None, horizon=timedelta(minutes=10), limit=6, bulk=(False,) * 3, room=100):
    return plan_slots(
        next_free=next_free,
        now=NOW,
        horizon=NOW + horizon,
        per_minute_limit=limit,
        bulk_first=list(bulk),
        daily_room=room,
    )


@pytest.mark.parametrize(
    ("limit", "bulk", "seconds"),
    [(1, False, 60), (6, False, 10), (60, False, 1), (6, True, 20), (2, True, 30), (0, False, 60)],
)
def test_spacing_keeps_every_minute_under_the_limit(limit, bulk, seconds):
    assert spacing(limit, bulk_first=bulk) == timedelta(seconds=seconds)
    assert BULK_FIRST_STEP_PER_MINUTE == 3


def test_slots_are_spaced_from_now_when_the_mailbox_is_free():
    result = plan()
    assert result.slots == [NOW, NOW + timedelta(seconds=10), NOW + timedelta(seconds=20)]
    assert result.next_free == NOW + timedelta(seconds=30)


@pytest.mark.parametrize("next_free", [NOW - timedelta(hours=1), NOW])
def test_a_next_free_slot_in_the_past_starts_now(next_free):
    assert plan(next_free=next_free, bulk=[False]).slots == [NOW]


def test_a_next_free_slot_in_the_future_is_waited_for():
    later = NOW + timedelta(seconds=45)
    result = plan(next_free=later, bulk=[False, False])
    assert result.slots == [later, later + timedelta(seconds=10)]
    assert result.next_free == later + timedelta(seconds=20)


def test_each_item_waits_the_spacing_of_its_own_kind():
    result = plan(bulk=[True, False, True])
    assert result.slots == [NOW, NOW + timedelta(seconds=20), NOW + timedelta(seconds=30)]
    assert result.next_free == NOW + timedelta(seconds=50)


def test_only_slots_up_to_the_horizon_are_granted():
    result = plan(horizon=timedelta(seconds=10), bulk=[False] * 5)
    assert result.slots == [NOW, NOW + timedelta(seconds=10)]  # the horizon itself is in
    assert result.next_free == NOW + timedelta(seconds=20)


def test_nothing_fits_before_the_horizon_and_the_next_free_slot_stays():
    later = NOW + timedelta(minutes=5)
    result = plan(next_free=later, horizon=timedelta(seconds=2), bulk=[False])
    assert result.slots == [] and result.next_free == later
    assert plan(horizon=timedelta(0), bulk=[]).next_free == NOW


@pytest.mark.parametrize(("room", "granted"), [(2, 2), (1, 1), (0, 0), (-3, 0), (10, 3)])
def test_no_more_than_the_daily_room_is_granted(room, granted):
    result = plan(room=room)
    assert len(result.slots) == granted
    expected_next = NOW + timedelta(seconds=10 * granted) if granted else NOW
    assert result.next_free == expected_next


@pytest.mark.parametrize(
    ("next_free", "horizon", "room", "most"),
    [
        (None, timedelta(seconds=2), 100, 1),  # 10 a minute: one slot in 2 seconds
        (None, timedelta(seconds=6), 100, 2),  # now and 6 s later, the horizon included
        (None, timedelta(minutes=1), 100, 11),
        (None, timedelta(minutes=1), 4, 4),  # the daily room caps it
        (None, timedelta(minutes=1), 0, 0),
        (None, timedelta(minutes=1), 1, 1),
        (None, timedelta(minutes=1), -3, 0),  # over the limit already (a limit lowered)
        (NOW + timedelta(seconds=2), timedelta(seconds=2), 100, 1),  # a slot at the horizon
        (NOW + timedelta(seconds=3), timedelta(seconds=2), 100, 0),  # next slot too late
        (NOW - timedelta(hours=1), timedelta(seconds=2), 100, 1),  # a past slot starts now
    ],
)
def test_most_slots_is_what_plan_slots_grants_at_most(next_free, horizon, room, most):
    from cadenza.domain.throttle import most_slots

    got = most_slots(
        next_free=next_free, now=NOW, horizon=NOW + horizon, per_minute_limit=10, daily_room=room
    )
    granted = plan_slots(
        next_free=next_free,
        now=NOW,
        horizon=NOW + horizon,
        per_minute_limit=10,
        bulk_first=[False] * 50,
        daily_room=room,
    )
    assert got == most == len(granted.slots)


def test_an_item_claimed_ahead_is_slotted_no_sooner_than_it_is_due():
    """Items due later than the mailbox is free get their due times; the next ones are
    spaced after them; an item due past the horizon is not granted."""
    due = [NOW + timedelta(seconds=4), NOW + timedelta(seconds=4), NOW + timedelta(seconds=50)]
    result = plan_slots(
        next_free=None,
        now=NOW,
        horizon=NOW + timedelta(seconds=30),
        per_minute_limit=6,
        bulk_first=[False] * 3,
        daily_room=100,
        due=due,
    )
    assert result.slots == [due[0], due[0] + timedelta(seconds=10)]
    assert result.next_free == due[0] + timedelta(seconds=20)
    # due before the mailbox is free: the mailbox's slot, as without due times
    free = NOW + timedelta(seconds=8)
    assert plan_slots(
        next_free=free, now=NOW, horizon=NOW + timedelta(seconds=30), per_minute_limit=6,
        bulk_first=[False], daily_room=100, due=[NOW + timedelta(seconds=2)],
    ).slots == [free]  # fmt: skip
