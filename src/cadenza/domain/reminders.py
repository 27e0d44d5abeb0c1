"""A user's task reminder and daily digest preferences, and the times they give: pure.

The reminder moment of a task is its due time less the user's lead, never before the
task existed (a task made after that moment is reminded of at once). The digest of a
local day falls due at the user's digest hour on that day, in the user's time zone
(docs/task-reminders.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cadenza.domain.enums import ReminderTiming
from cadenza.domain.errors import CadenzaError, ErrorCode

MAX_MINUTES_BEFORE = 10080  # a week
DEFAULT_DIGEST_HOUR = 8


def _invalid(field: str, message: str) -> CadenzaError:
    return CadenzaError(ErrorCode.VALIDATION_ERROR, message, {"field": field})


@dataclass(frozen=True)
class ReminderPrefs:
    """What a user chose. `minutes_before` counts only with the `before` timing."""

    timing: ReminderTiming = ReminderTiming.AT_DUE
    minutes_before: int = 0
    digest: bool = False
    digest_hour: int = DEFAULT_DIGEST_HOUR

    def changed(self, changes: dict[str, Any]) -> ReminderPrefs:
        """These preferences with `changes` applied, each value checked (bad ones refused
        with the field they concern; unknown fields too)."""
        unknown = sorted(set(changes) - {"timing", "minutes_before", "digest", "digest_hour"})
        if unknown:
            raise _invalid(unknown[0], f"unknown preference {unknown[0]!r}")
        timing, minutes = self.timing, self.minutes_before
        digest, hour = self.digest, self.digest_hour
        if "timing" in changes:
            try:
                timing = ReminderTiming(changes["timing"])
            except ValueError:
                choices = ", ".join(t.value for t in ReminderTiming)
                raise _invalid("timing", f"timing must be one of {choices}") from None
        if "minutes_before" in changes:
            minutes = _whole(changes["minutes_before"], "minutes_before", 0, MAX_MINUTES_BEFORE)
        if "digest" in changes:
            if not isinstance(changes["digest"], bool):
                raise _invalid("digest", "digest must be true or false")
            digest = changes["digest"]
        if "digest_hour" in changes:
            hour = _whole(changes["digest_hour"], "digest_hour", 0, 23)
        if timing is ReminderTiming.BEFORE and minutes == 0 and "minutes_before" in changes:
            timing = ReminderTiming.AT_DUE  # "0 minutes before" is at the due time
        return ReminderPrefs(
            timing, minutes if timing is ReminderTiming.BEFORE else 0, digest, hour
        )

    def remind_at(self, due_at: datetime, created_at: datetime) -> datetime | None:
        """When to remind of a task due at `due_at`, made at `created_at` (None: never)."""
        if self.timing is ReminderTiming.NONE:
            return None
        lead = timedelta(minutes=self.minutes_before if self.timing is ReminderTiming.BEFORE else 0)
        return max(due_at - lead, min(created_at, due_at))


def _whole(value: object, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(field, f"{field} must be a whole number from {low} to {high}")
    return value


def local_day(now: datetime, zone: ZoneInfo) -> date:
    return now.astimezone(zone).date()


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants a local day starts and ends at (23 or 25 hours on DST days)."""
    start = datetime.combine(day, time(), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
    return start, end


def digest_at(day: date, hour: int, zone: ZoneInfo) -> datetime:
    """The UTC instant a local day's digest falls due (a skipped DST hour moves it on)."""
    return datetime.combine(day, time(hour), zone).astimezone(UTC)


def digest_due_day(now: datetime, hour: int, zone: ZoneInfo) -> date | None:
    """The local day whose digest is due at `now` (its hour has come), or None."""
    day = local_day(now, zone)
    return day if digest_at(day, hour, zone) <= now else None


def next_digest_at(now: datetime, hour: int, zone: ZoneInfo, *, sent_today: bool) -> datetime:
    """The next instant a digest falls due: today's (if not made yet), else tomorrow's."""
    day = local_day(now, zone)
    today = digest_at(day, hour, zone)
    if today > now or not sent_today:
        return today
    return digest_at(day + timedelta(days=1), hour, zone)
