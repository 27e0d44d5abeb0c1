"""Column types that behave the same on SQLite and PostgreSQL."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import DateTime, String
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC and always hands back aware UTC datetimes.

    SQLite has no time zone type and would otherwise return naive values, which mix
    badly with the aware datetimes used everywhere else; naive input is refused so a
    local time can never be stored by mistake.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored; use an aware UTC value")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


E = TypeVar("E", bound=StrEnum)


class StrEnumType(TypeDecorator[E]):
    """A string column holding one closed vocabulary (domain/enums.py).

    The column stays a plain VARCHAR (no database enum type, so no migration and no
    ALTER TYPE when a value is added); what this adds is the boundary check. Binding
    a value outside the enum is refused before it reaches the database, and a row
    holding one (written by hand, or by a newer version) fails with the vocabulary and
    its values named, rather than flowing on as a string nothing matches.
    Rows come back as enum members, which compare equal to their strings.
    """

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int = 20) -> None:
        super().__init__(length)
        self.enum = enum
        # Keyed by value: a member hashes and compares as its value, so one dict lookup
        # finds the member for either (cheaper than calling the enum on the hot path).
        self._members: dict[str, E] = {m.value: m for m in enum}

    def _member(self, value: str) -> E:
        member = self._members.get(value) if isinstance(value, str) else None
        if member is None:
            allowed = ", ".join(self._members)
            raise ValueError(f"{value!r} is not a {self.enum.__name__} (one of: {allowed})")
        return member

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        if value is None:
            return None
        # Always the plain value, whatever the driver would make of a str subclass.
        return self._member(value).value

    def process_result_value(self, value: str | None, dialect) -> E | None:
        return None if value is None else self._member(value)

    # The base declares `str`; None stays None (SQLAlchemy renders it as NULL).
    def process_literal_param(self, value: str | None, dialect) -> str | None:  # type: ignore[override]
        return self.process_bind_param(value, dialect)

    @property
    def python_type(self) -> type[E]:
        return self.enum
