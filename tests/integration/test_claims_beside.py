"""Claims beside hand-overs (PostgreSQL): a claim that is composing holds up no
hand-over of its mailboxes' emails, two claims still never plan one mailbox at once,
and a running worker hands over what it claimed while its next claim round runs.

Against a real PostgreSQL and a real SMTP server. The claim is held at a known point
(its composing, or the worker's claim round) by an event the test lets go, and a
hand-over that would wait for the claim's locks meets a lock timeout instead of
hanging, so what waits on what is read off the database, not guessed from time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from cadenza.domain.clock import SystemClock
from cadenza.engine.worker import Worker, WorkerOptions
from cadenza.services import worker_jobs as jobs
from cadenza.services.context import Context
from cadenza.services.delivery import claims
from cadenza.services.delivery import handover as delivery
from cadenza.services.delivery.handover import HandOver
from cadenza.store.models import Mailbox, Message
from tests.support.seed import seed_due_emails
from tests.support.smtp_sink import SmtpSink

WAIT = 60  # seconds: a ceiling for what the test waits on, never a measure of time

# spacing 0.1 s: a claim over the 2 s horizon grants about twenty slots a mailbox
TEN_A_SECOND = 600


def _claim(
    ctx: Context, mailbox_id: int, worker: str = "w", horizon_seconds: float = 1.0
) -> list[claims.ClaimedEmail]:
    """A claim of one mailbox, up to five emails within the horizon."""
    horizon = timedelta(seconds=horizon_seconds)
    lease = timedelta(minutes=5)
    return claims.claim_emails(ctx, mailbox_id, worker, batch_size=5, horizon=horizon, lease=lease)


@contextmanager
def composing_held(monkeypatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """The next claim's composing stops until the test lets it go (other claims
    compose as usual): (reached, let_go)."""
    reached, let_go = threading.Event(), threading.Event()
    compose = claims.composed_columns
    first = threading.Lock()

    def held(*args, **kwargs):
        if first.acquire(blocking=False):
            reached.set()
            assert let_go.wait(WAIT)
        return compose(*args, **kwargs)

    monkeypatch.setattr(claims, "composed_columns", held)
    try:
        yield reached, let_go
    finally:
        let_go.set()


@contextmanager
def lock_timeout(ctx: Context, ms: int = 5_000) -> Iterator[None]:
    """Every transaction opened meanwhile gives up on a row lock after `ms`: a wait
    for the claim's locks fails the test instead of hanging it."""
    engines = {ctx.db.engine, ctx.db.keyed_engine}

    def limit(connection) -> None:
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")

    for engine in engines:
        event.listen(engine, "begin", limit)
    try:
        yield
    finally:
        for engine in engines:
            event.remove(engine, "begin", limit)


def test_a_claim_composing_holds_up_no_hand_over_of_its_mailbox(pg_ctx, monkeypatch):
    """The mailbox's first email is claimed; a second claim of the same mailbox is
    composing (held there) while the first email is handed over: the hand-over locks
    the mailbox's row and commits at once. Before, the claim held that row from its
    first statement to its commit, and every hand-over of its mailboxes waited for its
    whole composing."""
    ctx = pg_ctx
    [mailbox_id] = seed_due_emails(ctx, 2, due_at=ctx.clock.now() - timedelta(seconds=1))
    [first] = claims.claim_emails(
        ctx, mailbox_id, "w", batch_size=1, horizon=timedelta(0), lease=timedelta(minutes=5)
    )
    found: list[list[claims.ClaimedEmail]] = []
    with composing_held(monkeypatch) as (reached, let_go):
        second = threading.Thread(target=lambda: found.append(_claim(ctx, mailbox_id)))
        second.start()
        assert reached.wait(WAIT)  # the second claim is composing, its transaction open
        with lock_timeout(ctx):
            answer = delivery.hand_over(ctx, first, "w")
        let_go.set()
        second.join(WAIT)
    assert answer is HandOver.GO
    [[later]] = found
    assert later.slot > first.slot  # planned after the first: the mailbox's slots shared
    with ctx.db.read() as session:
        statuses = dict(session.execute(select(Message.id, Message.status)).all())
    assert statuses == {first.message_pk: "handing", later.message_pk: "prepared"}


def test_a_mailbox_being_claimed_is_left_to_that_claim(pg_ctx, monkeypatch):
    """While one claim of a mailbox is open, another claim of it takes nothing (it does
    not wait either: another worker claims it now); once the first has committed, the
    next claim plans from the slots it granted."""
    ctx = pg_ctx
    [mailbox_id] = seed_due_emails(
        ctx, 4, per_minute_limit=TEN_A_SECOND, due_at=ctx.clock.now() - timedelta(seconds=1)
    )
    found: list[list[claims.ClaimedEmail]] = []
    with composing_held(monkeypatch) as (reached, let_go):
        first = threading.Thread(target=lambda: found.append(_claim(ctx, mailbox_id, "a", 0)))
        first.start()
        assert reached.wait(WAIT)
        with lock_timeout(ctx):
            meanwhile = _claim(ctx, mailbox_id, "b")
        let_go.set()
        first.join(WAIT)
    assert meanwhile == []
    [granted] = found
    assert len(granted) == 1  # no horizon: the one slot due now
    after = _claim(ctx, mailbox_id, "b")
    assert after and min(c.slot for c in after) >= granted[0].slot + granted[0].spacing
    with ctx.db.read() as session:
        next_send_at = session.scalar(select(Mailbox.next_send_at).where(Mailbox.id == mailbox_id))
    assert next_send_at is not None and next_send_at > max(c.slot for c in after)


@pytest.fixture
def live_pg(pg_ctx) -> Context:
    """PostgreSQL on the system clock: a running worker waits for real slots."""
    return Context(db=pg_ctx.db, clock=SystemClock(), settings=pg_ctx.settings)


def test_a_running_worker_hands_over_what_it_claimed_while_its_next_claim_runs(
    live_pg, monkeypatch
):
    """Two mailboxes at ten emails a second, thirty due each: the first claim round
    grants each about twenty slots over the two-second horizon. The second round,
    started a second later, is held until every email of the first has reached the
    server: on PostgreSQL the worker claims on a thread of its own, so its loop goes on
    handing them over. A worker that claimed on its loop's thread would stop with half
    of them waiting, and the server would never see them (TimeoutError)."""
    ctx = live_pg
    rounds: list[int] = []
    second_round, let_go = threading.Event(), threading.Event()
    claim_due = jobs.claim_due

    def held_after_the_first(*args, **kwargs):
        if rounds:
            second_round.set()
            assert let_go.wait(WAIT)
        claimed = claim_due(*args, **kwargs)
        rounds.append(len(claimed))
        return claimed

    monkeypatch.setattr(jobs, "claim_due", held_after_the_first)
    with SmtpSink() as sink:
        seed_due_emails(
            ctx, 60, mailboxes=2, smtp_port=sink.port, per_minute_limit=TEN_A_SECOND,
            due_at=ctx.clock.now() - timedelta(seconds=1),
        )  # fmt: skip
        worker = Worker(ctx, WorkerOptions(webhooks=False))
        assert worker.claims_beside
        running = threading.Thread(target=worker.run, kwargs={"exit_when_idle": True})
        running.start()
        try:
            assert second_round.wait(WAIT)
            first = rounds[0]
            assert 40 <= first < 60  # the horizon's slots, not all sixty
            sink.wait_for_messages(first, timeout=WAIT)  # while the second round is held
        finally:
            let_go.set()
            running.join(WAIT)
        received = sink.message_ids()
    assert not running.is_alive()
    assert len(received) == len(set(received)) == 60
    with ctx.db.read() as session:
        sent = session.scalar(select(func.count()).where(Message.status == "sent"))
    assert sent == 60
