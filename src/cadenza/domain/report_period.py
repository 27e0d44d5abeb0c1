"""A report's period and the one before it, in whole UTC days: pure, no I/O.

Reports compare a period with the one just before it of the same length (30 days with
the 30 days before), so a manager reads a change, not only a figure. Days are UTC days,
like the analytics' daily series: every viewer of a report sees the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from cadenza.domain.errors import CadenzaError, ErrorCode

DEFAULT_DAYS = 30
# Ten years and a bit: longer than any sales team's history, short enough that a
# period's arithmetic (and its previous period) stays within datetime's range.
MAX_DAYS = 3700
_EARLIEST = date(1970, 1, 1)


@dataclass(frozen=True)
class Period:
    start: date  # first day, included
    end: date  # last day, included

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time(), UTC)

    @property
    def until(self) -> datetime:
        """The first moment after the period (exclusive bound)."""
        return datetime.combine(self.end + timedelta(days=1), time(), UTC)

    def previous(self) -> Period:
        """The period of the same length that ends the day before this one starts."""
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def day_list(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]


def period(start: date | None, end: date | None, *, today: date) -> Period:
    """The period asked for: both ends, or `DEFAULT_DAYS` ending at `end` (or today),
    or from `start` to today. Refused with a clear message when it cannot be one."""
    last = end or (today if start is None or start <= today else start)
    first = start or last - timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"the period ends ({last}) before it starts ({first})",
            {"start": first.isoformat(), "end": last.isoformat()},
        )
    if (last - first).days + 1 > MAX_DAYS:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"a period is at most {MAX_DAYS} days",
            {"start": first.isoformat(), "end": last.isoformat()},
        )
    if first - timedelta(days=(last - first).days + 1) < _EARLIEST:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"a period starts after {_EARLIEST.year} with room for the period before it",
            {"start": first.isoformat()},
        )
    return Period(first, last)


def parse_day(text: str | None, field: str) -> date | None:
    """A YYYY-MM-DD date typed in a form or a command line; empty is None."""
    if text is None or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"{field} must be a date as YYYY-MM-DD, not {text[:40]!r}",
            {"field": field},
        ) from None


def change(current: int, previous: int) -> float | None:
    """The relative change from the previous period; None when it had nothing."""
    return round((current - previous) / previous, 4) if previous else None
