"""The per-email statements over libpq (store/libpq_statements.py), on a real PostgreSQL:
what goes in comes back, every kind of array item and scalar; errors are psycopg's own
and leave the transaction to roll back; the transaction is psycopg's, begun and ended
as its own; and a rollback, a savepoint's included, never loses the prepared statements
of the hand-over's connections."""

from __future__ import annotations

import socket
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Integer,
    String,
    Text,
    bindparam,
    insert,
    literal,
    literal_column,
    select,
)

from cadenza.store.bound_rows import BoundRows
from cadenza.store.libpq_statements import LibpqStatement, Result
from cadenza.store.models import AppSecret
from cadenza.store.prepared import Prepared
from cadenza.store.types import UTCDateTime

ROWS = BoundRows(
    "given",
    n=Integer(),
    big=BigInteger(),
    word=String(20),
    note=Text(),
    at=UTCDateTime(),
    day=Date(),
    yes=Boolean(),
)
ECHO = Prepared(build=lambda dialect: select(ROWS.table(dialect)))
SCALARS = Prepared(
    select(
        bindparam("n", type_=Integer) + literal(1),
        bindparam("word", type_=Text),
        bindparam("at", type_=UTCDateTime),
        bindparam("yes", type_=Boolean),
        bindparam("nothing", type_=Integer),
        literal_column("'50%'"),  # a percent sign in the SQL itself
    )
)
AT = datetime(2026, 12, 6, 8, 30, 1, 250, tzinfo=UTC)


@pytest.fixture
def keyed(database):
    if database.dialect != "postgresql":
        pytest.skip("libpq is PostgreSQL's")
    return database.keyed_engine


def test_every_kind_of_array_item_comes_back_as_given(keyed):
    given = [
        (1, 2**40, "one", 'it\'s "quoted", a \\ and {braces}', AT, date(2026, 12, 6), True),
        (-2, None, None, "Zoë — 日本語", AT - timedelta(days=9000), date(1999, 12, 31), False),
        (None, -(2**40), "", "", None, None, None),
    ]
    with keyed.begin() as connection:
        result = ECHO.run(connection, ROWS.bind(given, connection.dialect))
        assert isinstance(result, Result)  # the libpq path, not psycopg's cursor
        assert result.fetchall() == given


def test_no_rows_is_an_empty_table(keyed):
    with keyed.begin() as connection:
        assert ECHO.run(connection, ROWS.bind([], connection.dialect)).fetchall() == []


def test_scalars_are_read_as_their_casts_say(keyed):
    with keyed.begin() as connection:
        params = {"n": 41, "word": "naïve", "at": AT, "yes": False, "nothing": None}
        row = SCALARS.run(connection, params).fetchone()
    assert row == (42, "naïve", AT, False, None, "50%")


SECRET = Prepared(
    insert(AppSecret).values(
        name=bindparam("name"), value=bindparam("value"), created_at=bindparam("at")
    )
)


def test_an_error_is_psycopgs_own_and_the_transaction_rolls_back(keyed):
    params = {"name": "libpq-test", "value": "v", "at": AT}
    with pytest.raises(psycopg.errors.UniqueViolation), keyed.begin() as connection:
        assert SECRET.run(connection, params).rowcount == 1
        SECRET.run(connection, params)  # the same name again
    with keyed.begin() as connection:  # nothing of the failed transaction stayed
        count = connection.exec_driver_sql(
            "SELECT count(*) FROM app_secrets WHERE name = 'libpq-test'"
        ).scalar()
    assert count == 0


def test_a_lost_connection_is_an_operational_error(keyed):
    """As psycopg's cursor reports it, so the pool's disconnect handling sees the same.
    The connection is cut from this side (the socket shut down, as a server that died
    without a word leaves it): no SQLSTATE comes back to say what happened."""
    with keyed.connect() as connection:
        driver = connection.connection.driver_connection
        with socket.fromfd(driver.pgconn.socket, socket.AF_INET, socket.SOCK_STREAM) as cut:
            cut.shutdown(socket.SHUT_RDWR)
        with pytest.raises(psycopg.OperationalError):
            ECHO.run(connection, ROWS.bind([(1, 1, "a", "b", AT, None, True)],
                                            connection.dialect))  # fmt: skip
        connection.invalidate()


def test_the_first_statement_begins_a_transaction_that_psycopg_ends(keyed):
    """The insert is its transaction's first statement, so libpq's path sends BEGIN:
    without it the insert would commit on its own and outlive the rollback."""
    params = {"name": "libpq-begin", "value": "v", "at": AT}
    with pytest.raises(RuntimeError), keyed.begin() as connection:
        SECRET.run(connection, params)
        raise RuntimeError("roll back")
    with keyed.begin() as connection:
        SECRET.run(connection, params)  # no duplicate: the first one was rolled back
    with keyed.connect() as connection:
        names = connection.exec_driver_sql(
            "SELECT count(*) FROM app_secrets WHERE name = 'libpq-begin'"
        ).scalar()
    assert names == 1


def test_a_rollback_keeps_the_connections_prepared_statements(keyed):
    """psycopg, where it prepares statements of its own, deallocates every prepared
    statement of the connection after a ROLLBACK, a savepoint's included: the hand-over's
    connections leave preparing to store/libpq_statements.py, or its next statement
    would fail (break `libpq-statements-deallocated`)."""
    keyed.dispose()  # one connection in the pool: the same one every time below
    with keyed.begin() as connection:
        for _ in range(6):  # past psycopg's threshold, were it preparing
            ECHO.run(connection, ROWS.bind([(1, 1, "a", "b", AT, None, True)], connection.dialect))
        savepoint = connection.begin_nested()
        connection.exec_driver_sql("SELECT 1")
        savepoint.rollback()
        rows = ECHO.run(connection, ROWS.bind([(2, 2, "c", "d", AT, None, False)],
                                               connection.dialect)).fetchall()  # fmt: skip
    assert rows == [(2, 2, "c", "d", AT, None, False)]
    with keyed.begin() as connection:  # and in the next transaction on that connection
        rows = ECHO.run(connection, ROWS.bind([(3, 3, "e", "f", AT, None, None)],
                                               connection.dialect)).fetchall()  # fmt: skip
    assert rows == [(3, 3, "e", "f", AT, None, None)]


def test_each_connection_prepares_its_own(keyed):
    with keyed.connect() as first, keyed.connect() as second:
        for connection in (first, second, first):
            rows = ECHO.run(connection, ROWS.bind([(7, 7, "g", "h", AT, None, True)],
                                                   connection.dialect)).fetchall()  # fmt: skip
            assert rows == [(7, 7, "g", "h", AT, None, True)]
            connection.rollback()


def test_other_connections_keep_psycopgs_cursor(database):
    """The main engine's connections prepare as psycopg decides (the web app's queries):
    the per-email statements run on them through psycopg's cursor."""
    if database.dialect != "postgresql":
        pytest.skip("libpq is PostgreSQL's")
    with database.engine.begin() as connection:
        result = ECHO.run(connection, ROWS.bind([(1, 1, "a", "b", AT, None, True)],
                                                 connection.dialect))  # fmt: skip
        assert isinstance(result, psycopg.Cursor)
        assert result.fetchall() == [(1, 1, "a", "b", AT, None, True)]


def test_an_array_without_a_binary_writer_is_refused_when_compiled():
    """Found once, when the statement is first compiled, not as bad bytes at the server."""
    with pytest.raises(ValueError, match="NUMERIC"):
        LibpqStatement.of("SELECT unnest(%(xs)b::NUMERIC[])", {})


def test_a_value_of_no_known_text_is_refused_before_it_is_sent():
    statement = LibpqStatement.of("SELECT %(x)s::TEXT", {"x": "TEXT"})
    assert statement.values({"x": "ok"}) == [b"ok"]
    with pytest.raises(TypeError, match="bytes"):
        statement.values({"x": b"raw"})
