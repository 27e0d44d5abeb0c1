"""Unenroll and pause racing the worker's hand-over on PostgreSQL, decided both ways.

The hand-over locks the enrollment row (delivery._begin_handing), so an unenroll or a
pause either commits first (and the message never leaves) or waits for the hand-over
(and the send is recorded, then the enrollment ends or pauses). The order is made,
not hoped for: a third connection holds the enrollment's row lock while the two
contenders queue behind it one after the other, each seen waiting in
pg_stat_activity; PostgreSQL grants a row's lock to its waiters in the order they
came. No sleeps decide anything: the polling below only waits for a state to be seen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from cadenza.domain.delivery_outcome import DeliveryOutcome, DeliveryResult
from cadenza.services.context import Context
from cadenza.services.delivery import claims
from cadenza.services.delivery import handover as delivery
from cadenza.services.delivery.handover import HandOver
from cadenza.services.enrollment import control as enrollment_control
from cadenza.store.db import Database
from cadenza.store.models import Enrollment, Message, StepRun
from tests.conftest import World, _empty_postgres, enroll_ids

BOUND = 30.0  # seconds: only ever reached when something hangs


@pytest.fixture
def pg_ctx(pg_database_url, clock, settings) -> Iterator[Context]:
    db = Database(pg_database_url)
    _empty_postgres(db)
    yield Context(db=db, clock=clock, settings=settings)
    db.dispose()


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
            pytest.fail(f"{name} did not wait for the enrollment's row lock")
        assert time.monotonic() < deadline, f"{name} never queued for the lock"
        time.sleep(0.005)


def race(ctx: Context, enrollment_id: int, first, second):
    """Runs `first` then `second`, both queued behind a lock on the enrollment's row."""
    with ctx.db.engine.connect() as holder:
        holder.begin()
        holder.execute(
            select(Enrollment.id).where(Enrollment.id == enrollment_id).with_for_update()
        )
        a = Contender(first[1])
        queue_behind_lock(ctx, a, 1, first[0])
        b = Contender(second[1])
        queue_behind_lock(ctx, b, 2, second[0])
        holder.rollback()
    return a.outcome(), b.outcome()


def claimed(ctx: Context, world: World):
    [eid] = enroll_ids(world, [world.contact()])
    [mailbox_id] = claims.mailboxes_with_due_email(ctx)
    [claim] = claims.claim_emails(
        ctx, mailbox_id, "w1", batch_size=1, horizon=timedelta(0), lease=timedelta(minutes=5)
    )
    return eid, claim


def state(ctx, eid, claim):
    with ctx.db.read() as session:
        enrollment = session.get(Enrollment, eid)
        message = session.get(Message, claim.message_pk)
        runs = session.scalars(
            select(StepRun.status).where(StepRun.enrollment_id == eid).order_by(StepRun.id)
        ).all()
        return enrollment.state, message.status, list(runs)


STOPS = {"unenroll": enrollment_control.unenroll, "pause": enrollment_control.pause}


@pytest.mark.parametrize("stop", ["unenroll", "pause"])
def test_stop_before_the_hand_over_means_nothing_is_sent(pg_ctx, stop):
    world = World(pg_ctx)
    eid, claim = claimed(pg_ctx, world)
    _, handed = race(
        pg_ctx,
        eid,
        (stop, lambda: STOPS[stop](pg_ctx, eid)),
        ("the hand-over", lambda: delivery.hand_over(pg_ctx, claim, "w1")),
    )
    assert handed is HandOver.SKIP
    released = {"unenroll": "cancelled", "pause": "paused"}[stop]
    ended = {"unenroll": "unenrolled", "pause": "paused"}[stop]
    assert state(pg_ctx, eid, claim) == (ended, "prepared", [released])


@pytest.mark.parametrize("stop", ["unenroll", "pause"])
def test_stop_after_the_hand_over_lets_the_send_be_recorded_then_ends(pg_ctx, stop):
    world = World(pg_ctx)
    eid, claim = claimed(pg_ctx, world)
    handed, _ = race(
        pg_ctx,
        eid,
        ("the hand-over", lambda: delivery.hand_over(pg_ctx, claim, "w1")),
        (stop, lambda: STOPS[stop](pg_ctx, eid)),
    )
    assert handed is HandOver.GO
    accepted = DeliveryResult(DeliveryOutcome.SENT, 250, "2.0.0 queued")
    delivery.record_outcomes(pg_ctx, [(claim, accepted)], "w1")
    if stop == "unenroll":  # the send counts; nothing follows it
        assert state(pg_ctx, eid, claim) == ("unenrolled", "sent", ["sent"])
    else:  # the send counts; the next step waits for resume
        assert state(pg_ctx, eid, claim) == ("paused", "sent", ["sent", "paused"])
