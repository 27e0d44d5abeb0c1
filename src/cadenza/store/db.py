"""The database handle: one engine, one session factory, one transaction per use case."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc, make_url
from sqlalchemy.orm import Session, sessionmaker


def _configure_sqlite(engine: Engine) -> None:
    """WAL for concurrent readers, foreign keys on, and writers that queue rather than fail.

    pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINTs, so it is
    turned off and every transaction starts with BEGIN IMMEDIATE: the write lock is
    taken up front, which is what makes check-then-insert use cases (enrollment's
    "one sequence at a time") safe without row locks, which SQLite does not have.

    Every commit reaches the disk before it returns (`synchronous=FULL`), as
    PostgreSQL's do. With WAL's usual NORMAL, a commit survives the process's crash
    but not the machine's: a power cut could undo the `handing` mark of an email the
    server had already accepted, and the email would be sent again once its lease
    expired. "At most once, ever" holds across crashes of the host too, for a
    flush of the WAL per commit (about 0.1 ms on this project's machines:
    docs/benchmarks.md, *Fifteenth session*).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")


# Connections a process keeps open, and its most: the same ceiling as SQLAlchemy's
# default (5 kept, 10 more at busy moments, docs/deploy.md), but all of them kept. With
# the default, a web process serving more than 5 requests at once closed a connection
# after each of the others and opened a new one for the next request: a PostgreSQL
# backend started (and an SQLite file opened, its pragmas run) per request under load.
POOL_SIZE = 15


def _pool_options(url: str) -> dict[str, Any]:
    """POOL_SIZE for a server or a file; an in-memory SQLite database has a pool of
    its own kind (a connection per thread), which takes no size."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        return {}
    return {"pool_size": POOL_SIZE, "max_overflow": 0}


def make_engine(url: str, *, plan_once: bool = False) -> Engine:
    """`plan_once`: on PostgreSQL, each statement prepared is planned once per
    connection, and only the engine's per-email statements are prepared, by
    store/libpq_statements.py (`Database.keyed_engine`)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    options = _pool_options(url)
    if plan_once and not url.startswith("sqlite"):
        options["connect_args"] = {
            "options": "-c plan_cache_mode=force_generic_plan",
            # the per-email statements are prepared by store/libpq_statements.py, and
            # psycopg's own preparing would deallocate them after any rollback
            "prepare_threshold": None,
        }
    engine = create_engine(url, future=True, **options)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    else:
        _ping_rested_connections(engine)
    return engine


# How long a connection may rest in the pool and still be handed out without a ping.
PING_AFTER_REST_SECONDS = 0.5


def _ping_rested_connections(engine: Engine) -> None:
    """A connection that rested in the pool longer than `PING_AFTER_REST_SECONDS` is
    pinged before it is handed out, and a dead one replaced (with every connection
    opened before it: a server restart drops them all), so a request never fails on a
    connection the server closed while it was idle (its idle timeout, a restart, a
    failover). One back from a request less than that ago is handed out as it is,
    like HikariCP's `aliveBypassWindowMs` (500 ms too): under load, every connection
    is back within milliseconds, and a ping at every checkout was a round trip more
    for every request, two for an API request (its token check's checkout and its use
    case's; bench/api.py, docs/benchmarks.md, the twenty-first session). A server
    that goes away within that half second fails the requests it would have failed
    anyway, those in flight, and the next request on each connection used a moment
    before; the first disconnect seen replaces every connection (SQLAlchemy's pool
    invalidation).
    An SQLite file cannot drop a connection: it is never pinged."""

    @event.listens_for(engine.pool, "checkin")
    def _returned(_dbapi_connection, record) -> None:
        if record is not None:
            record.info["returned_at"] = _now()

    @event.listens_for(engine.pool, "checkout")
    def _handed_out(dbapi_connection, record, _proxy) -> None:
        returned = record.info.get("returned_at")
        if returned is None or _now() - returned < PING_AFTER_REST_SECONDS:
            return  # a new connection, or one that was in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as err:
            if engine.dialect.is_disconnect(err, dbapi_connection, None):
                raise exc.InvalidatePoolError() from err
            raise


def _now() -> float:
    """The pool's clock (a test moves it instead of waiting)."""
    return time.monotonic()


def _refuse_writes(session: Session, _context: Any, _instances: Any) -> None:
    """A read session writes nothing: on PostgreSQL it runs in autocommit, where each
    statement of a flush would be kept on its own, and a failure halfway would leave
    the rest unwritten (`Database.read`)."""
    raise RuntimeError(
        "a read session (Database.read) would write "
        f"{len(session.new)} new, {len(session.dirty)} changed and "
        f"{len(session.deleted)} deleted rows: the use case needs Database.transaction"
    )


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Reads take no write lock on SQLite (WAL lets them run beside the writer), so
        # the API's reads never queue behind the worker's sends; on PostgreSQL they run
        # in autocommit (`read`).
        self._readers = sessionmaker(
            self._reads.execution_options(sqlite_begin="DEFERRED"), expire_on_commit=False
        )
        event.listen(self._readers, "before_flush", _refuse_writes)

    @cached_property
    def keyed_engine(self) -> Engine:
        """For transactions whose statements find their rows by key: the worker's
        hand-over commit (services/delivery/handover.py), whose statements take a
        commit's rows as arrays (store/bound_rows.py). PostgreSQL would plan such a
        prepared statement anew at every run, since the array's length makes each
        custom plan look cheaper than the generic one; here each is planned once per
        connection, which cut the server's CPU per email by about a third
        (bench/engine.py, docs/benchmarks.md). On SQLite, the one engine."""
        if self.dialect != "postgresql":
            return self.engine
        return make_engine(self.url, plan_once=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Commit on success, roll back on any exception: nothing is ever half-written."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """For use cases that only read. On SQLite, one transaction (`BEGIN DEFERRED`):
        its statements see one snapshot, and take no write lock. On PostgreSQL, no
        transaction at all (autocommit): at the READ COMMITTED level PostgreSQL's
        transactions run at here, every statement sees a snapshot of its own inside a
        transaction too, so a transaction would give a read nothing but its `BEGIN` and
        `COMMIT`, two round trips of the ten a busy request (the enroll preview) made
        (bench/api.py, docs/benchmarks.md, the twenty-first session). What a read
        session writes is therefore kept at once: a use case that writes takes
        `transaction`."""
        with self._readers() as session, session.begin():
            yield session

    @contextmanager
    def single_read(self) -> Iterator[Connection]:
        """A connection for one read statement, outside any transaction: a single
        statement sees one consistent state by itself. For a read every API request
        makes (the token check), where a transaction's BEGIN and COMMIT would be two
        statements more than the read, run on the driver's cursor
        (store/prepared.py). On SQLite its connections already run each statement on
        its own (`isolation_level = None`) until a BEGIN, which nothing sends here; on
        PostgreSQL the connection is in autocommit for the read."""
        with self._reads.connect() as connection:
            yield connection

    @cached_property
    def _reads(self) -> Engine:
        """The engine of reads: the one engine in autocommit on PostgreSQL."""
        if self.dialect == "postgresql":
            return self.engine.execution_options(isolation_level="AUTOCOMMIT")
        return self.engine

    def dispose(self) -> None:
        self.engine.dispose()
        if "keyed_engine" in self.__dict__:
            self.keyed_engine.dispose()
