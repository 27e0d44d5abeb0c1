"""The delivery protocol's guards, each reached on purpose (issue 19, section 2).

Every test here names a condition in services/delivery/claims.py or
services/delivery/handover.py that
was once removable without any test failing: the hand-over's owner condition, the
stale-lease branch, in-flight messages counted toward the daily limit, the attempts
counter reset after an authentication failure. The PostgreSQL races are in
test_delivery_races.py.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from cadenza.domain.delivery_outcome import DeliveryOutcome, DeliveryResult
from cadenza.services.accounts.mailboxes import reconnect_mailbox
from cadenza.services.delivery import claims, recovery
from cadenza.services.delivery import handover as delivery
from cadenza.services.delivery.handover import MAX_ATTEMPTS, HandOver
from cadenza.store.models import DeliveryAttempt, Mailbox, Message, StepRun
from tests.conftest import enroll_ids

LEASE = timedelta(minutes=1)


def claim(ctx, worker_id, batch_size=10, horizon=timedelta(minutes=5)):
    [mailbox_id] = claims.mailboxes_with_due_email(ctx)
    return claims.claim_emails(
        ctx, mailbox_id, worker_id, batch_size=batch_size, horizon=horizon, lease=LEASE
    )


def run_of(ctx, run_id) -> StepRun:
    with ctx.db.read() as session:
        return session.get(StepRun, run_id)


def message_of(ctx, pk) -> Message:
    with ctx.db.read() as session:
        return session.get(Message, pk)


def set_mailbox(ctx, mailbox_id, **values) -> None:
    with ctx.db.transaction() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        for name, value in values.items():
            setattr(mailbox, name, value)


def test_a_worker_whose_lease_was_taken_over_does_not_hand_over(ctx, world):
    enroll_ids(world, [world.contact()])
    [stale] = claim(ctx, "slow")
    ctx.clock.advance(LEASE * 2)  # "slow" stalls past its lease...
    assert recovery.recover_expired(ctx) == 1
    [fresh] = claim(ctx, "fresh")  # ...and another worker claims the same stored message
    assert fresh.message_pk == stale.message_pk
    assert delivery.hand_over(ctx, stale, "slow") is HandOver.SKIP
    assert message_of(ctx, stale.message_pk).status == "prepared"  # nothing left
    assert delivery.hand_over(ctx, fresh, "fresh") is HandOver.GO
    run = run_of(ctx, fresh.run_id)
    assert (run.status, run.locked_by) == ("sending", "fresh")
    assert message_of(ctx, fresh.message_pk).status == "handing"


def test_a_worker_whose_expired_claim_was_taken_back_does_not_hand_over(ctx, world):
    enroll_ids(world, [world.contact()])
    [stale] = claim(ctx, "slow")
    ctx.clock.advance(LEASE * 2)
    assert recovery.recover_expired(ctx) == 1  # pending again, owned by nobody
    assert delivery.hand_over(ctx, stale, "slow") is HandOver.SKIP
    assert message_of(ctx, stale.message_pk).status == "prepared"
    run = run_of(ctx, stale.run_id)
    assert (run.status, run.locked_by) == ("pending", None)


def test_another_workers_outcome_for_a_message_it_does_not_own_is_not_recorded(ctx, world):
    enroll_ids(world, [world.contact()])
    [held] = claim(ctx, "w1")
    assert delivery.hand_over(ctx, held, "w1") is HandOver.GO
    accepted = DeliveryResult(DeliveryOutcome.SENT, 250, "OK")
    delivery.record_outcomes(ctx, [(held, accepted)], "w2")  # not its claim
    assert message_of(ctx, held.message_pk).status == "handing"
    assert run_of(ctx, held.run_id).status == "sending"
    delivery.record_outcomes(ctx, [(held, accepted)], "w1")
    assert message_of(ctx, held.message_pk).status == "sent"
    assert run_of(ctx, held.run_id).status == "sent"


def test_messages_in_flight_count_toward_the_daily_limit(ctx, world):
    set_mailbox(ctx, world.mailbox.id, daily_limit=3)
    enroll_ids(world, world.contacts(4))
    [handing] = claim(ctx, "w1", batch_size=1)
    assert delivery.hand_over(ctx, handing, "w1") is HandOver.GO  # handed, no answer yet
    [prepared] = claim(ctx, "w1", batch_size=1)  # claimed, not yet handed
    assert {message_of(ctx, c.message_pk).status for c in (handing, prepared)} == {
        "handing",
        "prepared",
    }
    ctx.clock.advance(timedelta(minutes=1))  # past the throttle's spacing
    granted = claim(ctx, "w2")
    assert len(granted) == 1  # 3 a day: two already on their way
    with ctx.db.read() as session:
        held = session.scalars(select(StepRun).where(StepRun.status == "pending")).all()
    assert [r.wait_reason for r in held] == ["daily_limit"]


def test_an_authentication_failure_is_not_counted_as_a_try(ctx, world):
    enroll_ids(world, [world.contact()])
    refused = DeliveryResult(DeliveryOutcome.AUTH_FAILED, 535, "5.7.8 credentials invalid")
    for _ in range(MAX_ATTEMPTS + 1):  # more refusals than tries are allowed
        [held] = claim(ctx, "w1")
        assert delivery.hand_over(ctx, held, "w1") is HandOver.GO
        delivery.record_outcomes(ctx, [(held, refused)], "w1")
        run = run_of(ctx, held.run_id)
        assert (run.status, run.wait_reason, run.attempts) == (
            "pending",
            "mailbox_disconnected",
            0,
        )
        reconnect_mailbox(ctx, world.mailbox.id)
        ctx.clock.advance(timedelta(minutes=1))
    [held] = claim(ctx, "w1")
    assert delivery.hand_over(ctx, held, "w1") is HandOver.GO
    busy = DeliveryResult(DeliveryOutcome.TRANSIENT, 451, "4.3.0 try later")
    delivery.record_outcomes(ctx, [(held, busy)], "w1")
    run = run_of(ctx, held.run_id)
    assert (run.status, run.wait_reason, run.attempts) == ("pending", "retry", 1)
    with ctx.db.read() as session:
        attempts = session.scalars(select(DeliveryAttempt.outcome)).all()
    assert attempts.count("auth_failed") == MAX_ATTEMPTS + 1  # each refusal is kept
