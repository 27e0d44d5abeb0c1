"""Time as an injected dependency, so tests and projections run days in milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from threading import Event
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def wait(self, seconds: float, stop: Event) -> None:
        """Lets time pass (or until `stop` is set): how the worker spaces its sends."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, seconds: float, stop: Event) -> None:
        stop.wait(seconds)


class FrozenClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def wait(self, seconds: float, stop: Event) -> None:
        self.advance(timedelta(seconds=seconds))

    def set(self, moment: datetime) -> None:
        self._now = moment.astimezone(UTC)
