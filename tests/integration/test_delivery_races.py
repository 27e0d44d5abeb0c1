"""Unenroll and pause racing the worker's hand-over on PostgreSQL, decided both ways.

The hand-over locks the enrollment row (delivery._begin_handing), so an unenroll or a
pause either commits first (and the message never leaves) or waits for the hand-over
(and the send is recorded, then the enrollment ends or pauses). The order is made,
not hoped for: a third connection holds the enrollment's row lock while the two
contenders queue behind it one after the other, each seen waiting in
pg_stat_activity; PostgreSQL grants a row's lock to its waiters in the order they
came. No sleeps decide anything: the polling below only waits for a state to be seen.
The stops take that lock too: the last test races an unenroll against a pause.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cadenza.domain.delivery_outcome import DeliveryOutcome, DeliveryResult
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.context import Context
from cadenza.services.delivery import claims
from cadenza.services.delivery import handover as delivery
from cadenza.services.delivery.handover import HandOver
from cadenza.services.enrollment import control as enrollment_control
from cadenza.store.models import Enrollment, Message, StepRun
from tests.conftest import World, enroll_ids
from tests.support.pg_locks import Contender, queue_behind_lock


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


def refusal(action):
    """What `action` returned, or the code of the refusal it raised."""
    try:
        return action()
    except CadenzaError as exc:
        return exc.code


def test_a_pause_queued_behind_an_unenroll_finds_the_enrollment_ended(pg_ctx):
    """The stop's own lock on the enrollment (control.lock_enrollment): without it a pause
    reads the row before the unenroll commits and writes `paused` over `unenrolled`
    afterwards, and a resume would send again to someone unenrolled."""
    world = World(pg_ctx)
    [eid] = enroll_ids(world, [world.contact()])
    unenrolled, paused = race(
        pg_ctx,
        eid,
        ("the unenroll", lambda: enrollment_control.unenroll(pg_ctx, eid)),
        ("the pause", lambda: refusal(lambda: enrollment_control.pause(pg_ctx, eid))),
    )
    assert unenrolled.state == "unenrolled"
    assert paused == ErrorCode.INVALID_STATE
    with pg_ctx.db.read() as session:
        assert session.get(Enrollment, eid).state == "unenrolled"
