"""UTCDateTime's fast SQLite path writes exactly what SQLAlchemy's general path writes.

SQLite compares instants as text, so one differing character (a missing microsecond
field, another offset) would order rows wrongly; the engine's statements and the
ORM's both bind through this type.
"""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeDecorator

from cadenza.store.types import UTCDateTime

SQLITE = sqlite.dialect()


def _general_path(value: datetime | None) -> str | None:
    """What TypeDecorator's own composition (process_bind_param, then SQLite's
    DATETIME processor) makes of the value."""
    general = TypeDecorator.bind_processor(UTCDateTime().dialect_impl(SQLITE), SQLITE)
    assert general is not None
    return general(value)


INSTANTS = [
    datetime(2026, 12, 4, 23, 5, 7, 123456, tzinfo=UTC),
    datetime(2026, 12, 4, 23, 5, 7, 0, tzinfo=UTC),  # no microseconds: still six digits
    datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2))),  # moved to UTC
    datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
    datetime(999, 2, 3, 4, 5, 6, 7, tzinfo=UTC),  # year padded to four digits
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


@pytest.mark.parametrize("value", INSTANTS, ids=str)
def test_the_fast_path_writes_sqlalchemys_text(value):
    fast = UTCDateTime().dialect_impl(SQLITE).bind_processor(SQLITE)
    assert fast(value) == _general_path(value)
    assert fast(value) == value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f").zfill(26)


def test_none_stays_none_and_naive_is_refused():
    fast = UTCDateTime().dialect_impl(SQLITE).bind_processor(SQLITE)
    assert fast(None) is None
    with pytest.raises(ValueError, match="naive datetime"):
        fast(datetime(2026, 12, 4, 12, 0))


FAST = "UTCDateTime.bind_processor.<locals>.process"


def test_other_databases_and_formats_keep_the_general_path():
    psycopg = postgresql.psycopg.dialect()
    on_postgresql = UTCDateTime().dialect_impl(psycopg).bind_processor(psycopg)
    assert on_postgresql is not None and on_postgresql.__qualname__ != FAST
    value = INSTANTS[2]
    assert on_postgresql(value) == value.astimezone(UTC)  # aware, for timestamptz

    other = UTCDateTime().dialect_impl(SQLITE)
    slashes = sqlite.DATETIME(storage_format="%(year)04d/%(month)02d/%(day)02d")
    other.impl = other.impl_instance = slashes
    processor = other.bind_processor(SQLITE)
    assert processor is not None and processor.__qualname__ != FAST
    assert processor(value) == "2026/03/28"


def test_a_stored_instant_reads_back_the_same_and_orders_as_text(tmp_path):
    from sqlalchemy import Column, Integer, MetaData, Table, insert, select

    table = Table(
        "t", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime())
    )
    engine = create_engine(f"sqlite:///{tmp_path}/t.db")
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(table), [{"at": value} for value in INSTANTS])
        back = connection.execute(select(table.c.at).order_by(table.c.at)).scalars().all()
    assert back == sorted(value.astimezone(UTC) for value in INSTANTS)
