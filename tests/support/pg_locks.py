"""Use cases run against a row lock held by a third connection on PostgreSQL: who waits
for it, who skips it, and in which order waiters are served. Shared by the race tests of
the hand-over and the lock tests of the claim.

No sleep decides anything: the polling below only waits, with a bound, for a state to be
seen (a contender finished, or a backend waiting on a lock in pg_stat_activity).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import text

from cadenza.services.context import Context

BOUND = 30.0  # seconds: only ever reached when something hangs


class Contender:
    """A use case run in its own thread (and so its own connection)."""

    def __init__(self, action: Callable[[], object]) -> None:
        self._action = action
        self.result: object = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self._action()
        except BaseException as exc:  # re-raised in the test's thread by outcome()
            self.error = exc

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive()

    def outcome(self) -> object:
        self._thread.join(BOUND)
        assert self.finished, "the contender never finished"
        if self.error is not None:
            raise self.error
        return self.result


def waiting_on_locks(ctx: Context) -> int:
    """How many of this database's backends wait for a lock right now."""
    with ctx.db.engine.connect() as connection:
        return connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )


def queue_behind_lock(ctx: Context, contender: Contender, waiters: int, name: str) -> None:
    """Waits until `contender` is seen waiting for a lock; fails if it went through instead."""
    deadline = time.monotonic() + BOUND
    while waiting_on_locks(ctx) < waiters:
        if contender.finished:
            contender.outcome()  # its own error, if it had one
            pytest.fail(f"{name} did not wait for the row lock")
        assert time.monotonic() < deadline, f"{name} never queued for the lock"
        time.sleep(0.005)


def without_waiting(ctx: Context, holder, action: Callable[[], object], name: str) -> object:
    """Runs `action` while `holder` (a connection in a transaction) keeps its row locks, and
    returns what it returned; fails at once if it is seen waiting for a lock instead (the
    holder then lets go, so that nothing hangs)."""
    contender = Contender(action)
    deadline = time.monotonic() + BOUND
    while not contender.finished:
        if waiting_on_locks(ctx):
            holder.rollback()
            contender.outcome()
            pytest.fail(f"{name} waited for a row lock it should have passed by")
        assert time.monotonic() < deadline, f"{name} never finished"
        time.sleep(0.005)
    return contender.outcome()
