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

    def bind_processor(self, dialect):
        """On SQLite, the check, the move to UTC and SQLAlchemy's text in one call.

        The engine binds several instants for every email it sends (bench/engine.py),
        and the general path (this type's `process_bind_param`, then SQLite's DATETIME
        processor formatting through a dict) was 3 % of a worker's CPU. The text is
        byte for byte SQLAlchemy's default storage format (tests/unit/test_store_types.py
        compares them): SQLite compares instants as this text.
        """
        if getattr(self.impl_instance, "_storage_format", None) != _SQLITE_STORAGE:
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError(
                    f"naive datetime {value!r} cannot be stored; use an aware UTC value"
                )
            v = value.astimezone(UTC)
            fields = (v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)
            return _SQLITE_TEXT % fields

        return process

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLAlchemy's default text of a DATETIME on SQLite, by name and by position
_SQLITE_STORAGE = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)
_SQLITE_TEXT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


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
