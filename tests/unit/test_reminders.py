"""Task reminder and digest times (domain/reminders.py): pure, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cadenza.domain.enums import ReminderTiming
from cadenza.domain.errors import CadenzaError
from cadenza.domain.reminders import (
    ReminderPrefs,
    day_bounds,
    digest_at,
    digest_due_day,
    next_digest_at,
)

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")


def test_reminder_moment_per_timing_never_before_the_task_existed():
    due = NOON + timedelta(hours=2)
    assert ReminderPrefs().remind_at(due, NOON) == due
    assert ReminderPrefs(ReminderTiming.NONE).remind_at(due, NOON) is None
    before = ReminderPrefs(ReminderTiming.BEFORE, 30)
    assert before.remind_at(due, NOON) == due - timedelta(minutes=30)
    # made after its reminder moment: at once; made after it was due: at the due time
    assert ReminderPrefs(ReminderTiming.BEFORE, 600).remind_at(due, NOON) == NOON
    assert before.remind_at(NOON - timedelta(hours=1), NOON) == NOON - timedelta(hours=1)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"timing": "sometimes"}, "timing"),
        ({"minutes_before": -1}, "minutes_before"),
        ({"minutes_before": 10081}, "minutes_before"),
        ({"minutes_before": "30"}, "minutes_before"),
        ({"minutes_before": True}, "minutes_before"),
        ({"digest": "yes"}, "digest"),
        ({"digest_hour": 24}, "digest_hour"),
        ({"digest_hour": None}, "digest_hour"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_preferences_are_refused_with_their_field(changes, field):
    with pytest.raises(CadenzaError) as refused:
        ReminderPrefs().changed(changes)
    assert refused.value.code == "validation_error"
    assert refused.value.details == {"field": field}


def test_changed_preferences_keep_what_was_not_sent_and_normalise_minutes():
    prefs = ReminderPrefs().changed({"timing": "before", "minutes_before": 45, "digest": True})
    assert prefs == ReminderPrefs(ReminderTiming.BEFORE, 45, True, 8)
    assert prefs.changed({"digest_hour": 7}) == ReminderPrefs(ReminderTiming.BEFORE, 45, True, 7)
    # minutes count only "before"; "0 minutes before" is at the due time
    assert prefs.changed({"timing": "at_due"}).minutes_before == 0
    assert prefs.changed({"minutes_before": 0}).timing is ReminderTiming.AT_DUE


def test_digest_hour_is_local_and_follows_daylight_saving():
    # 8:00 in New York is 13:00 UTC in winter, 12:00 UTC after the clocks go forward
    assert digest_at(date(2026, 3, 6), 8, NEW_YORK) == datetime(2026, 3, 6, 13, tzinfo=UTC)
    assert digest_at(date(2026, 3, 9), 8, NEW_YORK) == datetime(2026, 3, 9, 12, tzinfo=UTC)
    start, end = day_bounds(date(2026, 3, 8), NEW_YORK)  # a 23-hour day
    assert end - start == timedelta(hours=23)
    before = datetime(2026, 3, 2, 12, 59, tzinfo=UTC)
    assert digest_due_day(before, 8, NEW_YORK) is None
    assert digest_due_day(before + timedelta(minutes=1), 8, NEW_YORK) == date(2026, 3, 2)
    # 03:00 UTC on the 3rd is still the 2nd in New York
    assert digest_due_day(datetime(2026, 3, 3, 3, tzinfo=UTC), 8, NEW_YORK) == date(2026, 3, 2)


def test_next_digest_is_today_until_made_then_tomorrow():
    early = datetime(2026, 3, 2, 10, tzinfo=UTC)
    today = datetime(2026, 3, 2, 13, tzinfo=UTC)
    assert next_digest_at(early, 8, NEW_YORK, sent_today=False) == today
    late = datetime(2026, 3, 2, 15, tzinfo=UTC)
    assert next_digest_at(late, 8, NEW_YORK, sent_today=False) == today  # due: now
    tomorrow = datetime(2026, 3, 3, 13, tzinfo=UTC)
    assert next_digest_at(late, 8, NEW_YORK, sent_today=True) == tomorrow
