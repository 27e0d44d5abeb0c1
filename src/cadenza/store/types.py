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
    holding one (written by hand, or by a newer version) fails with the column and
    the allowed values named, rather than flowing on as a string nothing matches.
    Rows come back as enum members, which compare equal to their strings.
    """

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int = 20) -> None:
        super().__init__(length)
        self.enum = enum

    def _member(self, value: str) -> E:
        try:
            return self.enum(value)
        except ValueError:
            allowed = ", ".join(m.value for m in self.enum)
            raise ValueError(
                f"{value!r} is not a {self.enum.__name__} (one of: {allowed})"
            ) from None

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        if value is None:
            return None
        # The member's value is a plain str: drivers adapt exact types only.
        return self._member(value).value

    def process_result_value(self, value: str | None, dialect) -> E | None:
        return None if value is None else self._member(value)

    def process_literal_param(self, value: str | None, dialect) -> str | None:
        return self.process_bind_param(value, dialect)

    @property
    def python_type(self) -> type[E]:
        return self.enum
