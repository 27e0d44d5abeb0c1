"""A process keeps its database connections (store/db.py POOL_SIZE): under load, a
request never pays for opening one (a PostgreSQL backend started, an SQLite file
opened and its pragmas run), and the ceiling stays what docs/deploy.md counts on."""

from __future__ import annotations

from contextlib import ExitStack

from sqlalchemy import text

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
