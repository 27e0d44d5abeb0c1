from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cache
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadenza.domain.enums import FollowUpDays
from cadenza.domain.schedule import (
    ProjectedStep,
    StepDelay,
    first_step_due,
    next_step_due,
    normalize_follow_up,
    project_timeline,
)
from cadenza.domain.sequence_settings import SendWindow, SequenceSettings

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
KATHMANDU = ZoneInfo("Asia/Kathmandu")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
CHATHAM = ZoneInfo("Pacific/Chatham")

EVERY_DAY = SequenceSettings()
WEEKDAYS = SequenceSettings(follow_up_days=FollowUpDays.WEEKDAYS)
US_BUSINESS_DAYS = SequenceSettings(follow_up_days=FollowUpDays.BUSINESS_DAYS, holiday_country="US")
OFFICE_HOURS = SendWindow(time(8), time(18))
WEEKDAYS_IN_OFFICE_HOURS = SequenceSettings(
    follow_up_days=FollowUpDays.WEEKDAYS, send_window=OFFICE_HOURS
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def at(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz)


def days(n: int) -> StepDelay:
    return StepDelay(delay_days=n)


# --- first step -------------------------------------------------------------------------------


def test_first_step_is_due_now_without_send_at() -> None:
    now = at(NEW_YORK, 2026, 6, 1, 17, 0)
    due = first_step_due(now, None)
    assert due == utc(2026, 6, 1, 21, 0)
    assert due.tzinfo is UTC


def test_first_step_is_due_at_send_at() -> None:
    now = utc(2026, 6, 1, 12, 0)
    send_at = at(BERLIN, 2026, 6, 3, 9, 30)
    due = first_step_due(now, send_at)
    assert due == utc(2026, 6, 3, 7, 30)
    assert due.tzinfo is UTC  # every instant returned is in UTC, whatever zone it came in


def test_a_projected_step_is_shown_in_the_zone_asked_for() -> None:
    step = ProjectedStep(2, utc(2026, 6, 3, 7, 30))
    local = step.local(NEW_YORK)
    assert local.tzinfo is NEW_YORK and (local.hour, local.minute) == (3, 30)


def test_first_step_ignores_follow_up_days_and_window() -> None:
    sunday_night = at(NEW_YORK, 2026, 6, 7, 23, 30)
    assert first_step_due(sunday_night, None) == utc(2026, 6, 8, 3, 30)
    assert first_step_due(utc(2026, 6, 1, 12), sunday_night) == utc(2026, 6, 8, 3, 30)
    timeline = project_timeline(
        steps=[StepDelay()],
        positions=[1],
        tz=NEW_YORK,
        settings=WEEKDAYS_IN_OFFICE_HOURS,
        anchor=first_step_due(sunday_night, None),
        anchor_is_first_step=True,
    )
    assert timeline == [ProjectedStep(1, utc(2026, 6, 8, 3, 30))]


# --- follow-up days and the send window ---------------------------------------------------------


def test_reference_example_weekdays() -> None:
    enrolled = at(NEW_YORK, 2026, 6, 1, 17, 0)  # Monday 17:00
    step2 = next_step_due(enrolled, NEW_YORK, days(3), WEEKDAYS)
    assert step2.astimezone(NEW_YORK) == at(NEW_YORK, 2026, 6, 4, 17, 0)  # Thursday
    step3 = next_step_due(step2, NEW_YORK, days(3), WEEKDAYS)
    assert step3.astimezone(NEW_YORK) == at(NEW_YORK, 2026, 6, 8, 17, 0)  # Sunday -> Monday
    assert step3 == utc(2026, 6, 8, 21, 0)


def test_every_day_keeps_the_weekend() -> None:
    thursday = at(NEW_YORK, 2026, 6, 4, 17, 0)
    assert next_step_due(thursday, NEW_YORK, days(3), EVERY_DAY) == utc(2026, 6, 7, 21, 0)


def test_before_window_moves_to_window_start_same_day() -> None:
    tuesday_7am = at(NEW_YORK, 2026, 6, 2, 7, 0)
    due = next_step_due(tuesday_7am, NEW_YORK, StepDelay(), WEEKDAYS_IN_OFFICE_HOURS)
    assert due.astimezone(NEW_YORK) == at(NEW_YORK, 2026, 6, 2, 8, 0)


def test_after_window_moves_to_next_allowed_day_skipping_weekend() -> None:
    friday_7pm = at(NEW_YORK, 2026, 6, 5, 19, 0)
    due = next_step_due(friday_7pm, NEW_YORK, StepDelay(), WEEKDAYS_IN_OFFICE_HOURS)
    assert due.astimezone(NEW_YORK) == at(NEW_YORK, 2026, 6, 8, 8, 0)  # Monday


def test_window_end_is_exclusive() -> None:
    wednesday_6pm = at(NEW_YORK, 2026, 6, 3, 18, 0)
    due = next_step_due(wednesday_6pm, NEW_YORK, StepDelay(), WEEKDAYS_IN_OFFICE_HOURS)
    assert due.astimezone(NEW_YORK) == at(NEW_YORK, 2026, 6, 4, 8, 0)
    just_before = at(NEW_YORK, 2026, 6, 3, 17, 59, 59)
    due = next_step_due(just_before, NEW_YORK, StepDelay(), WEEKDAYS_IN_OFFICE_HOURS)
    assert due == just_before


def test_holiday_monday_moves_to_tuesday_with_business_days() -> None:
    friday = at(NEW_YORK, 2026, 9, 4, 10, 0)  # Monday 2026-09-07 is Labor Day
    assert next_step_due(friday, NEW_YORK, days(3), WEEKDAYS) == utc(2026, 9, 7, 14, 0)
    due = next_step_due(friday, NEW_YORK, days(3), US_BUSINESS_DAYS)
    assert due.astimezone(NEW_YORK) == at(NEW_YORK, 2026, 9, 8, 10, 0)


def test_observed_holiday_counts_as_holiday() -> None:
    # 2026-07-04 is a Saturday; the US observes it on Friday 2026-07-03.
    thursday = at(NEW_YORK, 2026, 7, 2, 10, 0)
    due = next_step_due(thursday, NEW_YORK, days(1), US_BUSINESS_DAYS)
    assert due.astimezone(NEW_YORK) == at(NEW_YORK, 2026, 7, 6, 10, 0)


def test_after_window_on_eve_of_holiday_skips_holiday_and_weekend() -> None:
    settings = SequenceSettings(
        follow_up_days=FollowUpDays.BUSINESS_DAYS, holiday_country="US", send_window=OFFICE_HOURS
    )
    friday_evening = at(NEW_YORK, 2026, 9, 4, 18, 30)
    due = next_step_due(friday_evening, NEW_YORK, StepDelay(), settings)
    assert due.astimezone(NEW_YORK) == at(NEW_YORK, 2026, 9, 8, 8, 0)


def test_delay_hours() -> None:
    morning = at(BERLIN, 2026, 6, 2, 10, 0)
    five_hours = StepDelay(delay_hours=5)
    assert next_step_due(morning, BERLIN, five_hours, EVERY_DAY) == utc(2026, 6, 2, 13, 0)
    ten_hours = StepDelay(delay_hours=10)  # 20:00 is past the window
    due = next_step_due(morning, BERLIN, ten_hours, WEEKDAYS_IN_OFFICE_HOURS)
    assert due.astimezone(BERLIN) == at(BERLIN, 2026, 6, 3, 8, 0)
    day_and_hours = StepDelay(delay_days=1, delay_hours=4)
    assert next_step_due(morning, BERLIN, day_and_hours, EVERY_DAY) == utc(2026, 6, 3, 12, 0)


def test_completion_in_another_zone_is_read_in_the_enrollment_zone() -> None:
    # 23:00 UTC on Friday is already Saturday 04:45 in Kathmandu...
    completed = utc(2026, 1, 9, 23, 0)
    due = next_step_due(completed, KATHMANDU, StepDelay(), WEEKDAYS)
    # ...so a weekday-only follow-up waits for Monday 04:45 there.
    assert due.astimezone(KATHMANDU) == at(KATHMANDU, 2026, 1, 12, 4, 45)


def test_negative_delay_is_rejected() -> None:
    with pytest.raises(ValueError):
        StepDelay(delay_days=-1)


# --- daylight saving time ---------------------------------------------------------------------


def test_spring_forward_gap_new_york() -> None:
    saturday = at(NEW_YORK, 2025, 3, 8, 2, 30)
    due = next_step_due(saturday, NEW_YORK, days(1), EVERY_DAY)
    assert due == utc(2025, 3, 9, 7, 0)
    assert due.astimezone(NEW_YORK) == at(NEW_YORK, 2025, 3, 9, 3, 0)
    assert due.astimezone(NEW_YORK).utcoffset() == timedelta(hours=-4)
    assert normalize_follow_up(datetime(2025, 3, 9, 2, 30), NEW_YORK, EVERY_DAY) == due


def test_spring_forward_gap_berlin() -> None:
    saturday = at(BERLIN, 2025, 3, 29, 2, 30)
    due = next_step_due(saturday, BERLIN, days(1), EVERY_DAY)
    assert due == utc(2025, 3, 30, 1, 0)
    assert due.astimezone(BERLIN) == at(BERLIN, 2025, 3, 30, 3, 0)


def test_delay_keeps_wall_clock_hour_across_spring_forward() -> None:
    saturday_9am = at(NEW_YORK, 2025, 3, 8, 9, 0)  # EST, UTC-5
    due = next_step_due(saturday_9am, NEW_YORK, days(1), EVERY_DAY)
    assert due == utc(2025, 3, 9, 13, 0)  # 09:00 EDT: only 23 hours later


def test_fall_back_ambiguous_time_takes_first_occurrence() -> None:
    saturday = at(NEW_YORK, 2025, 11, 1, 1, 30)  # EDT
    due = next_step_due(saturday, NEW_YORK, days(1), EVERY_DAY)
    assert due == utc(2025, 11, 2, 5, 30)  # 01:30 EDT, not 01:30 EST (06:30 UTC)
    assert normalize_follow_up(datetime(2025, 11, 2, 1, 30), NEW_YORK, EVERY_DAY) == due


def test_completion_in_repeated_hour_never_schedules_into_the_past() -> None:
    second_occurrence = utc(2025, 11, 2, 6, 10)  # 01:10 EST, after 01:10 EDT happened
    assert next_step_due(second_occurrence, NEW_YORK, StepDelay(), EVERY_DAY) == second_occurrence
    late_night_window = SequenceSettings(send_window=SendWindow(time(1, 45), time(23, 0)))
    due = next_step_due(second_occurrence, NEW_YORK, StepDelay(), late_night_window)
    assert due == utc(2025, 11, 2, 6, 45)  # 01:45 EST: 01:45 EDT was already past


def test_completion_in_the_first_pass_of_a_repeated_hour_is_not_put_an_hour_later() -> None:
    first_occurrence = utc(2025, 11, 2, 5, 10)  # 01:10 EDT; 01:10 EST comes an hour later
    assert next_step_due(first_occurrence, NEW_YORK, StepDelay(), EVERY_DAY) == first_occurrence


def test_daily_sequence_across_fall_back_keeps_local_hour() -> None:
    due = at(NEW_YORK, 2025, 10, 30, 9, 0)
    timeline = [due]
    for _ in range(6):
        due = next_step_due(due, NEW_YORK, days(1), EVERY_DAY)
        timeline.append(due)
    local = [d.astimezone(NEW_YORK) for d in timeline]
    assert [d.date() for d in local] == [date(2025, 10, 30) + timedelta(days=i) for i in range(7)]
    assert all(d.time() == time(9, 0) for d in local)
    assert [d.astimezone(UTC).hour for d in timeline] == [13, 13, 13, 14, 14, 14, 14]


def test_weekly_sequence_across_dst_keeps_local_nine_am() -> None:
    due = at(BERLIN, 2025, 3, 17, 9, 0)
    timeline = [due]
    for _ in range(3):
        due = next_step_due(due, BERLIN, days(7), WEEKDAYS_IN_OFFICE_HOURS)
        timeline.append(due)
    assert timeline[1:] == [utc(2025, 3, 24, 8), utc(2025, 3, 31, 7), utc(2025, 4, 7, 7)]
    assert all(d.astimezone(BERLIN).time() == time(9, 0) for d in timeline)


# --- unusual zones ------------------------------------------------------------------------------


def test_kathmandu_quarter_hour_offset() -> None:
    monday_9am = at(KATHMANDU, 2026, 1, 5, 9, 0)
    assert next_step_due(monday_9am, KATHMANDU, days(2), EVERY_DAY) == utc(2026, 1, 7, 3, 15)
    window = SequenceSettings(send_window=SendWindow(time(10), time(17)))
    assert next_step_due(monday_9am, KATHMANDU, days(2), window) == utc(2026, 1, 7, 4, 15)


def test_lord_howe_half_hour_spring_forward_gap() -> None:
    saturday = at(LORD_HOWE, 2026, 10, 3, 2, 15)  # +10:30
    due = next_step_due(saturday, LORD_HOWE, days(1), EVERY_DAY)
    assert due == utc(2026, 10, 3, 15, 30)  # the gap 02:00-02:30 ends at 02:30 +11:00
    assert due.astimezone(LORD_HOWE) == at(LORD_HOWE, 2026, 10, 4, 2, 30)
    assert due.astimezone(LORD_HOWE).utcoffset() == timedelta(hours=11)


def test_lord_howe_half_hour_fall_back_takes_first_occurrence() -> None:
    due = normalize_follow_up(datetime(2026, 4, 5, 1, 45), LORD_HOWE, EVERY_DAY)
    assert due == utc(2026, 4, 4, 14, 45)  # +11:00, before the clock goes back to 01:30


def test_chatham_odd_offsets_and_gap() -> None:
    friday_9am = at(CHATHAM, 2026, 1, 9, 9, 0)  # +13:45 in summer
    assert next_step_due(friday_9am, CHATHAM, days(3), WEEKDAYS) == utc(2026, 1, 11, 19, 15)
    saturday = at(CHATHAM, 2026, 9, 26, 2, 50)  # +12:45 in winter
    due = next_step_due(saturday, CHATHAM, days(1), EVERY_DAY)
    assert due == utc(2026, 9, 26, 14, 0)  # gap 02:45-03:45 ends at 03:45 +13:45
    assert due.astimezone(CHATHAM) == at(CHATHAM, 2026, 9, 27, 3, 45)


# --- programming errors -------------------------------------------------------------------------


def test_naive_inputs_are_rejected() -> None:
    naive = datetime(2026, 6, 1, 12, 0)
    aware = utc(2026, 6, 1, 12, 0)
    with pytest.raises(ValueError):
        first_step_due(naive, None)
    with pytest.raises(ValueError):
        first_step_due(aware, naive)
    with pytest.raises(ValueError):
        next_step_due(naive, NEW_YORK, StepDelay(), EVERY_DAY)
    with pytest.raises(ValueError):
        project_timeline(
            steps=[StepDelay()],
            positions=[1],
            tz=NEW_YORK,
            settings=EVERY_DAY,
            anchor=naive,
            anchor_is_first_step=True,
        )
    with pytest.raises(ValueError):
        normalize_follow_up(aware, NEW_YORK, EVERY_DAY)


def test_a_zone_without_an_offset_is_naive_too() -> None:
    """Python calls a datetime naive when its tzinfo gives no offset, not only without one."""

    class NoOffset(tzinfo):
        def utcoffset(self, dt):
            return None

    with pytest.raises(ValueError):
        first_step_due(datetime(2026, 6, 1, 12, 0, tzinfo=NoOffset()), None)


def test_project_timeline_rejects_mismatched_positions() -> None:
    with pytest.raises(ValueError):
        project_timeline(
            steps=[StepDelay(), StepDelay()],
            positions=[1],
            tz=NEW_YORK,
            settings=EVERY_DAY,
            anchor=utc(2026, 6, 1),
            anchor_is_first_step=True,
        )


# --- projection ---------------------------------------------------------------------------------

FIVE_STEPS = [
    StepDelay(),  # 1 email
    days(3),  # 2 email
    StepDelay(),  # 3 task, right after the email
    days(2),  # 4 email
    StepDelay(delay_days=1, delay_hours=4),  # 5 email
]


def test_project_timeline_five_steps_from_first_step() -> None:
    enrolled = first_step_due(at(NEW_YORK, 2026, 6, 1, 17, 0), None)
    timeline = project_timeline(
        steps=FIVE_STEPS,
        positions=[1, 2, 3, 4, 5],
        tz=NEW_YORK,
        settings=WEEKDAYS_IN_OFFICE_HOURS,
        anchor=enrolled,
        anchor_is_first_step=True,
    )
    assert [(s.position, s.local(NEW_YORK)) for s in timeline] == [
        (1, at(NEW_YORK, 2026, 6, 1, 17, 0)),  # Monday
        (2, at(NEW_YORK, 2026, 6, 4, 17, 0)),  # Thursday
        (3, at(NEW_YORK, 2026, 6, 4, 17, 0)),  # task with no delay: same instant
        (4, at(NEW_YORK, 2026, 6, 8, 17, 0)),  # Saturday -> Monday
        (5, at(NEW_YORK, 2026, 6, 10, 8, 0)),  # Tuesday 21:00 -> Wednesday window start
    ]
    assert all(s.due_at.tzinfo is UTC for s in timeline)


def test_project_timeline_from_completed_step() -> None:
    task_completed = at(NEW_YORK, 2026, 6, 5, 11, 0)  # step 3 completed on Friday
    timeline = project_timeline(
        steps=FIVE_STEPS[3:],
        positions=[4, 5],
        tz=NEW_YORK,
        settings=WEEKDAYS_IN_OFFICE_HOURS,
        anchor=task_completed,
        anchor_is_first_step=False,
    )
    assert timeline == [
        ProjectedStep(4, utc(2026, 6, 8, 15, 0)),  # Sunday 11:00 -> Monday 11:00
        ProjectedStep(5, utc(2026, 6, 9, 19, 0)),  # Tuesday 15:00
    ]


def test_project_timeline_of_nothing_is_empty() -> None:
    assert (
        project_timeline(
            steps=[],
            positions=[],
            tz=NEW_YORK,
            settings=EVERY_DAY,
            anchor=utc(2026, 6, 1),
            anchor_is_first_step=False,
        )
        == []
    )


# --- properties ---------------------------------------------------------------------------------

ZONES = [
    "UTC",
    "America/New_York",
    "America/Sao_Paulo",
    "America/St_Johns",
    "America/Nuuk",
    "Europe/Berlin",
    "Europe/London",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "Pacific/Chatham",
]

zones = st.sampled_from(ZONES).map(ZoneInfo)
delays = st.builds(StepDelay, delay_days=st.integers(0, 30), delay_hours=st.integers(0, 23))


@cache
def _transitions(zone: str) -> tuple[datetime, ...]:
    """Instants in 2020-2035 at which the zone's offset changes, to the second."""
    tz = ZoneInfo(zone)
    found = []
    day = utc(2020, 1, 1)
    while day.year < 2036:
        low, high = day, day + timedelta(days=1)
        if low.astimezone(tz).utcoffset() != high.astimezone(tz).utcoffset():
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high)
        day += timedelta(days=1)
    return tuple(found)


@st.composite
def instants(draw: st.DrawFn, tz: ZoneInfo, delay: StepDelay = StepDelay()) -> datetime:
    """Any instant, or one whose delayed wall time lands near a DST change (gaps, folds)."""
    transitions = _transitions(tz.key)
    if transitions and draw(st.booleans()):
        transition = draw(st.sampled_from(transitions))
        offset = draw(st.integers(-180 * 60, 180 * 60))
        delta = timedelta(days=delay.delay_days, hours=delay.delay_hours)
        return transition - delta + timedelta(seconds=offset)
    return draw(
        st.datetimes(
            min_value=datetime(2020, 1, 1),
            max_value=datetime(2035, 12, 31),
            timezones=st.just(UTC),
        )
    )


@st.composite
def follow_ups(draw: st.DrawFn) -> tuple[ZoneInfo, datetime, StepDelay]:
    tz = draw(zones)
    delay = draw(delays)
    return tz, draw(instants(tz, delay)), delay


@st.composite
def windows(draw: st.DrawFn) -> SendWindow:
    start = draw(st.integers(0, 23 * 60 + 58))
    end = draw(st.integers(start + 1, 23 * 60 + 59))
    return SendWindow(time(*divmod(start, 60)), time(*divmod(end, 60)))


sequence_settings = st.builds(
    SequenceSettings,
    follow_up_days=st.sampled_from(list(FollowUpDays)),
    holiday_country=st.sampled_from(["US", "DE", "GB", "FR"]),
    send_window=st.none() | windows(),
)

PROPERTY = settings(max_examples=200, deadline=None)


@cache
def _holidays(country: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, years=year)


def _allowed(day: date, rules: SequenceSettings) -> bool:
    if rules.follow_up_days == FollowUpDays.EVERY_DAY:
        return True
    if day.weekday() >= 5:
        return False
    if rules.follow_up_days == FollowUpDays.WEEKDAYS:
        return True
    assert rules.holiday_country is not None
    return day not in _holidays(rules.holiday_country, day.year)


def _ends_a_gap(instant: datetime, tz: ZoneInfo) -> bool:
    before = (instant - timedelta(seconds=1)).astimezone(tz).utcoffset()
    after = instant.astimezone(tz).utcoffset()
    assert before is not None and after is not None
    return after > before


def _check_due(due: datetime, after: datetime, tz: ZoneInfo, rules: SequenceSettings) -> None:
    assert due.tzinfo is UTC
    assert due >= after
    local = due.astimezone(tz)
    assert _allowed(local.date(), rules), local
    window = rules.send_window
    if window is not None and not window.start <= local.time() < window.end:
        assert _ends_a_gap(due, tz), local


@PROPERTY
@given(case=follow_ups(), rules=sequence_settings)
def test_next_step_due_properties(
    case: tuple[ZoneInfo, datetime, StepDelay], rules: SequenceSettings
) -> None:
    tz, completed, delay = case
    due = next_step_due(completed, tz, delay, rules)
    _check_due(due, completed, tz, rules)
    # The delay is measured on the wall clock and the rules only ever push forward.
    target = completed.astimezone(tz).replace(tzinfo=None) + timedelta(
        days=delay.delay_days, hours=delay.delay_hours
    )
    assert due.astimezone(tz).replace(tzinfo=None) >= target


@PROPERTY
@given(case=follow_ups())
def test_without_rules_the_wall_clock_delay_is_exact_unless_in_a_gap(
    case: tuple[ZoneInfo, datetime, StepDelay],
) -> None:
    tz, completed, delay = case
    due = next_step_due(completed, tz, delay, EVERY_DAY)
    target = completed.astimezone(tz).replace(tzinfo=None) + timedelta(
        days=delay.delay_days, hours=delay.delay_hours
    )
    if due.astimezone(tz).replace(tzinfo=None) != target:
        assert _ends_a_gap(due, tz)


@PROPERTY
@given(
    data=st.data(),
    tz=zones,
    steps=st.lists(delays, min_size=1, max_size=6),
    rules=sequence_settings,
    anchor_is_first_step=st.booleans(),
)
def test_projected_steps_never_go_backwards(
    data: st.DataObject,
    tz: ZoneInfo,
    steps: list[StepDelay],
    rules: SequenceSettings,
    anchor_is_first_step: bool,
) -> None:
    anchor = data.draw(instants(tz, steps[0]))
    positions = list(range(2, len(steps) + 2))
    timeline = project_timeline(
        steps=steps,
        positions=positions,
        tz=tz,
        settings=rules,
        anchor=anchor,
        anchor_is_first_step=anchor_is_first_step,
    )
    assert [s.position for s in timeline] == positions
    if anchor_is_first_step:
        assert timeline[0].due_at == anchor
    previous = anchor
    for index, step in enumerate(timeline):
        if index > 0 or not anchor_is_first_step:
            _check_due(step.due_at, previous, tz, rules)
        assert step.due_at >= previous
        previous = step.due_at
