"""A process keeps its database connections (store/db.py POOL_SIZE): under load, a
request never pays for opening one (a PostgreSQL backend started, an SQLite file
opened and its pragmas run), and the ceiling stays what docs/deploy.md counts on. On
PostgreSQL, a connection that rested is pinged before it is handed out, and one back a
moment ago is not (store/db.py `PING_AFTER_REST_SECONDS`)."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from cadenza.store import db as store_db
from cadenza.store.db import POOL_SIZE


def test_every_connection_of_a_busy_moment_is_kept_for_the_next(database):
    with ExitStack() as held:  # as many reads at once as the pool holds
        sessions = [held.enter_context(database.read()) for _ in range(POOL_SIZE)]
        assert [s.execute(text("SELECT 1")).scalar() for s in sessions] == [1] * POOL_SIZE
        assert database.engine.pool.checkedout() == POOL_SIZE
    assert database.engine.pool.checkedin() == POOL_SIZE  # none closed on the way back


def test_no_connection_beyond_the_ceiling_is_opened(database):
    assert database.engine.pool.size() == POOL_SIZE == 15
    assert database.engine.pool._max_overflow == 0  # 15 at most, as docs/deploy.md says


def _backend_pid(db) -> int:
    with db.read() as session:
        return session.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _terminate(db, pid: int) -> None:
    with db.transaction() as session:
        assert session.execute(text(f"SELECT pg_terminate_backend({pid})")).scalar_one()


def _single(db_url: str):
    """A database handle whose reads, one after another, all get the one connection its
    pool opened for the first."""
    return store_db.Database(db_url)


def test_a_connection_the_server_dropped_while_it_rested_is_replaced(pg_database_url, monkeypatch):
    db, other = _single(pg_database_url), _single(pg_database_url)
    now = [1000.0]
    monkeypatch.setattr(store_db, "_now", lambda: now[0])
    pings = _count_pings(monkeypatch, db)
    try:
        first = _backend_pid(db)
        _terminate(other, first)  # the server's idle timeout, a restart
        now[0] += store_db.PING_AFTER_REST_SECONDS + 0.1
        second = _backend_pid(db)  # no error: the ping found it dead
        assert second != first
        assert pings == [1]
    finally:
        db.dispose()
        other.dispose()


def test_a_connection_back_a_moment_ago_is_handed_out_without_a_ping(pg_database_url, monkeypatch):
    db = _single(pg_database_url)
    now = [1000.0]
    monkeypatch.setattr(store_db, "_now", lambda: now[0])
    pings = _count_pings(monkeypatch, db)
    try:
        pids = set()
        for _ in range(5):
            pids.add(_backend_pid(db))
            now[0] += store_db.PING_AFTER_REST_SECONDS - 0.1
        assert pings == [0]  # five checkouts of a busy connection, no round trip more
        now[0] += 1
        pids.add(_backend_pid(db))
        assert pings == [1]
        assert len(pids) == 1
    finally:
        db.dispose()


def test_a_connection_dropped_a_moment_after_use_fails_once_then_all_are_replaced(
    pg_database_url, monkeypatch
):
    """The trade the half second makes: the server going away within it fails the
    next request on that connection (as it fails those in flight), and that failure
    replaces every connection opened before it."""
    db, other = _single(pg_database_url), _single(pg_database_url)
    monkeypatch.setattr(store_db, "_now", lambda: 1000.0)
    try:
        first = _backend_pid(db)
        _terminate(other, first)
        with pytest.raises(OperationalError):
            _backend_pid(db)
        assert _backend_pid(db) != first
    finally:
        db.dispose()
        other.dispose()


def _count_pings(monkeypatch, db) -> list[int]:
    """How many pings the pool sent: the dialect's own ping, counted as it runs."""
    pings = [0]
    real = db.engine.dialect.do_ping

    def counted(dbapi_connection):
        pings[0] += 1
        return real(dbapi_connection)

    monkeypatch.setattr(db.engine.dialect, "do_ping", counted)
    return pings
