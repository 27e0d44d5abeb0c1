"""When each step of an enrollment is due.

Delays are added to the enrollment's local wall clock, not to UTC, so a follow-up
"3 days later" goes out at the same local hour even across a DST change. The
sequence's follow-up days and send window then push the time forward, and only at
the end is the wall time pinned to an instant. Every datetime returned is aware UTC;
naive inputs are refused because guessing their zone is how schedules drift.
See docs/schedule.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from math import ceil, floor
from zoneinfo import ZoneInfo

import holidays

from cadenza.domain.enums import FollowUpDays
from cadenza.domain.sequence_settings import SequenceSettings

# A year of consecutive disallowed days would mean broken holiday data, not a real calendar.
_MAX_SKIPPED_DAYS = 366


@dataclass(frozen=True)
class StepDelay:
    """The part of a step the schedule cares about: how long to wait after the previous one."""

    delay_days: int = 0
    delay_hours: int = 0

    def __post_init__(self) -> None:
        # A negative delay could put a step before the one it follows.
        if self.delay_days < 0 or self.delay_hours < 0:
            raise ValueError(f"step delays must not be negative: {self}")  # pragma: no mutate


@dataclass(frozen=True)
class ProjectedStep:
    position: int  # 1-based position of the step in its sequence
    due_at: datetime  # aware UTC

    def local(self, tz: tzinfo) -> datetime:
        return self.due_at.astimezone(tz)


def first_step_due(now: datetime, send_at: datetime | None) -> datetime:
    """The first step goes out when asked, ignoring follow-up days and the send window:
    those rules shape follow-ups, and the user who enrolls someone now means now."""
    _require_aware(now, "now")  # pragma: no mutate: message of a programming error
    if send_at is None:
        return now.astimezone(UTC)
    _require_aware(send_at, "send_at")  # pragma: no mutate: message of a programming error
    return send_at.astimezone(UTC)


def next_step_due(
    completed_at: datetime, tz: ZoneInfo, delay: StepDelay, settings: SequenceSettings
) -> datetime:
    """`completed_at` is when the previous step completed: an email when it was sent, a
    task when it was completed, or when it was created if the sequence does not wait."""
    _require_aware(completed_at, "completed_at")  # pragma: no mutate
    wall = completed_at.astimezone(tz).replace(tzinfo=None)
    wall += timedelta(days=delay.delay_days, hours=delay.delay_hours)
    wall = _apply_follow_up_rules(wall, settings)
    due = local_to_utc(wall, tz)
    if due < completed_at:
        # The completion fell in the repeated hour after a fall-back (its second
        # occurrence) and the due wall time is in that hour too: the first occurrence
        # would be in the past, so take the second.
        due = local_to_utc(wall.replace(fold=1), tz)
    return due


def normalize_follow_up(local_wall: datetime, tz: ZoneInfo, settings: SequenceSettings) -> datetime:
    """Applies follow-up days, the send window and DST resolution to a local wall time;
    shared with resuming a paused enrollment so both follow the same rules."""
    if local_wall.tzinfo is not None:
        raise ValueError(
            f"local_wall must be a naive local wall time, got {local_wall!r}"  # pragma: no mutate
        )
    return local_to_utc(_apply_follow_up_rules(local_wall, settings), tz)


def project_timeline(
    *,
    steps: Sequence[StepDelay],
    positions: Sequence[int],
    tz: ZoneInfo,
    settings: SequenceSettings,
    anchor: datetime,
    anchor_is_first_step: bool,
) -> list[ProjectedStep]:
    """Projects the remaining steps assuming each completes exactly when it is due.

    `steps` and `positions` are parallel: the remaining steps in order and their
    1-based positions. With `anchor_is_first_step`, steps[0] is the enrollment's first
    step, due at `anchor` (from `first_step_due`) and its delay is ignored; otherwise
    `anchor` is when the step before steps[0] completed.
    """
    if len(steps) != len(positions):
        raise ValueError(f"{len(steps)} steps but {len(positions)} positions")  # pragma: no mutate
    _require_aware(anchor, "anchor")  # pragma: no mutate: message of a programming error
    timeline: list[ProjectedStep] = []
    previous = anchor.astimezone(UTC)
    for index, (delay, position) in enumerate(
        zip(steps, positions, strict=True)  # pragma: no mutate: lengths compared above
    ):
        if index == 0 and anchor_is_first_step:
            due = previous
        else:
            due = next_step_due(previous, tz, delay, settings)
        timeline.append(ProjectedStep(position, due))
        previous = due
    return timeline


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value!r}")  # pragma: no mutate


def _apply_follow_up_rules(wall: datetime, settings: SequenceSettings) -> datetime:
    wall = _next_allowed_day(wall, settings)
    window = settings.send_window
    if window is None:
        return wall
    if wall.time() < window.start:  # pragma: no mutate: start moves to itself
        return datetime.combine(wall.date(), window.start)
    if wall.time() >= window.end:
        return _next_allowed_day(
            datetime.combine(wall.date() + timedelta(days=1), window.start), settings
        )
    return wall


def _next_allowed_day(wall: datetime, settings: SequenceSettings) -> datetime:
    for _ in range(_MAX_SKIPPED_DAYS):
        if _is_allowed_day(wall.date(), settings):
            return wall
        wall += timedelta(days=1)
    raise ValueError(
        f"no allowed follow-up day within a year of {wall:%Y-%m-%d}"  # pragma: no mutate
    )


def _is_allowed_day(day: date, settings: SequenceSettings) -> bool:
    mode = settings.follow_up_days
    if mode == FollowUpDays.EVERY_DAY:
        return True
    if day.weekday() >= 5:
        return False
    if mode == FollowUpDays.WEEKDAYS:
        return True
    assert settings.holiday_country, (
        "SequenceSettings requires a country for business_days"  # pragma: no mutate
    )
    return day not in _public_holidays(settings.holiday_country, day.year)


@lru_cache(maxsize=256)
def _public_holidays(country: str, year: int) -> frozenset[date]:
    # Building a holiday calendar costs far more than the rest of a schedule computation.
    return frozenset(holidays.country_holidays(country, years=year))


def local_to_utc(wall: datetime, tz: tzinfo) -> datetime:
    """Pins a wall time to an instant: an ambiguous time takes the occurrence chosen by
    its fold (0, the first, unless asked otherwise); a time inside a spring-forward gap
    moves to the instant the gap ends, the earliest moment that wall time has passed."""
    instant = wall.replace(tzinfo=tz).astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant
    return _gap_end(wall, tz)


def _gap_end(wall: datetime, tz: tzinfo) -> datetime:
    # The two folds read the wall time with the offsets before and after the gap; the
    # transition lies between them. Before it the local clock shows less than `wall`,
    # from it on more, so bisect on whole seconds (tz transitions are on whole seconds).
    candidates = [wall.replace(tzinfo=tz, fold=fold).timestamp() for fold in (0, 1)]
    low, high = floor(min(candidates)), ceil(max(candidates))
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz).replace(tzinfo=None) > wall:  # pragma: no mutate
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)
