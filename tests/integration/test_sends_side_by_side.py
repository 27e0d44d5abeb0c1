"""Mailboxes send side by side, far beyond a handful of connections, within the bound;
a running worker claims again while earlier emails are still in flight.

Against a real SMTP server that withholds its answers until the test lets them go, so
what is in flight at one moment is counted on the server's side, not guessed from time.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from cadenza.domain.clock import SystemClock
from cadenza.engine import sends
from cadenza.engine.worker import Worker, WorkerOptions
from cadenza.services import worker_jobs as jobs
from cadenza.services.accounts.mailboxes import update_mailbox
from cadenza.services.context import Context
from cadenza.store.models import Mailbox, Message, StepRun
from tests.support.seed import seed_due_emails
from tests.support.smtp_sink import SmtpSink


def EARLIER(ctx: Context):
    """Due a second ago: the frozen clock does not pass the seeded emails' due times."""
    return ctx.clock.now() - timedelta(seconds=1)


def statuses(ctx: Context) -> Counter:
    with ctx.db.transaction() as session:
        return Counter(
            dict(
                session.execute(select(Message.status, func.count()).group_by(Message.status)).all()
            )
        )


@contextmanager
def ticking(worker: Worker, release: threading.Event) -> Iterator[None]:
    """One tick of the worker on a thread of its own while the block runs; then the
    server's held answers are let go, the tick ends and the worker closes."""
    thread = threading.Thread(target=worker.tick)
    thread.start()
    try:
        yield
    finally:
        release.set()
        thread.join(timeout=60)
        worker.close()


def test_fifty_mailboxes_have_their_emails_in_flight_at_the_same_time(ctx):
    """One email each: the server holds all fifty unanswered at once (eight connections,
    the old bound, would never get there), then every one is recorded as sent."""
    with SmtpSink() as sink:
        seed_due_emails(ctx, 50, mailboxes=50, smtp_port=sink.port, due_at=EARLIER(ctx))
        release = sink.hold_all_data()
        worker = Worker(ctx, WorkerOptions(webhooks=False))
        with ticking(worker, release):
            most = sink.wait_for_held(50, timeout=60)
        received = sink.message_ids()
    assert most == 50
    assert len(received) == len(set(received)) == 50
    assert statuses(ctx) == Counter({"sent": 50})


def test_no_more_mailboxes_send_at_once_than_the_bound(ctx, monkeypatch):
    """Five mailboxes, a bound of three: the worker waits for a send to end before it
    starts a fourth. Checked at the moment the worker starts waiting (a worker that
    ignored the bound would have started all five without waiting)."""
    with SmtpSink() as sink:
        seed_due_emails(ctx, 5, mailboxes=5, smtp_port=sink.port, due_at=EARLIER(ctx))
        release = sink.hold_all_data()
        worker = Worker(ctx, WorkerOptions(webhooks=False, connections=3))
        waiting, in_flight_then = threading.Event(), []
        wait_for_a_send = worker.sends._wait_for_a_send

        def noted(*args, **kwargs):
            if not waiting.is_set():
                sink.wait_for_held(len(worker.sends.sending), timeout=60)
                in_flight_then.append(len(worker.sends.sending))
                waiting.set()
            return wait_for_a_send(*args, **kwargs)

        monkeypatch.setattr(worker.sends, "_wait_for_a_send", noted)
        with ticking(worker, release):
            assert waiting.wait(60)
            most = sink.wait_for_held(3, timeout=60)
        received = sink.message_ids()
    assert in_flight_then == [3] and most == 3
    assert len(received) == len(set(received)) == 5
    assert statuses(ctx) == Counter({"sent": 5})


def test_a_running_worker_claims_and_sends_while_another_mailbox_waits_for_its_server(
    database, settings
):
    """One server holds its first email unanswered; an email of another mailbox that
    falls due later is claimed and sent meanwhile (a worker that waited for every send
    of a round before claiming again would wait for the stuck server)."""
    ctx = Context(db=database, clock=SystemClock(), settings=settings)
    with SmtpSink() as stuck, SmtpSink() as healthy:
        stuck_box, later_box = seed_due_emails(ctx, 2, mailboxes=2, smtp_port=stuck.port)
        with ctx.db.transaction() as session:
            session.execute(
                update(StepRun)
                .where(StepRun.mailbox_id == later_box)
                .values(due_at=ctx.clock.now() + timedelta(seconds=2))
            )
        update_mailbox(ctx, later_box, {"smtp_port": healthy.port})
        reached, release = stuck.hang_data_after(0)
        worker = Worker(ctx, WorkerOptions(webhooks=False))
        running = threading.Thread(target=worker.run)
        running.start()
        try:
            assert reached.wait(60)
            healthy.wait_for_messages(1, timeout=60)
            with ctx.db.read() as session:  # the stuck one still waits for its answer
                stuck_then = session.scalar(
                    select(Message.status).where(Message.mailbox_id == stuck_box)
                )
        finally:
            release.set()
            worker.stop_event.set()
            running.join(timeout=60)
        assert stuck_then == "handing"
        assert len(stuck.message_ids()) == len(healthy.message_ids()) == 1
    assert statuses(ctx) == Counter({"sent": 2})


def _connections_at_first_hand_over(ctx: Context, sink: SmtpSink, worker: Worker) -> list[int]:
    """The server's open sessions each time the worker starts a hand-over commit."""
    seen: list[int] = []
    hand_over = worker.sends._hand_over

    def counted(due):  # type: ignore[no-untyped-def]
        seen.append(sink.connections)
        return hand_over(due)

    worker.sends._hand_over = counted  # type: ignore[method-assign]
    return seen


def test_a_mailbox_taken_on_ahead_of_its_first_slot_has_its_session_open_by_then(ctx):
    """Mailboxes whose next slot is a little ahead (they sent a moment ago, from another
    worker or before a restart) are claimed within the horizon: a worker without their
    sessions opens them at once, on sender threads. At the first hand-over all three
    are open, so the slots pay for MAIL and DATA only."""
    with SmtpSink() as sink:
        boxes = seed_due_emails(ctx, 3, mailboxes=3, smtp_port=sink.port, due_at=EARLIER(ctx))
        with ctx.db.transaction() as session:
            session.execute(
                update(Mailbox)
                .where(Mailbox.id.in_(boxes))
                .values(next_send_at=ctx.clock.now() + timedelta(seconds=1))
            )
        worker = Worker(ctx, WorkerOptions(webhooks=False))
        seen = _connections_at_first_hand_over(ctx, sink, worker)
        worker.tick()
        worker.close()
        received = sink.message_ids()
    assert seen[0] == 3
    assert len(received) == 3
    assert statuses(ctx) == Counter({"sent": 3})


def test_an_overdue_mailbox_sends_at_once_without_a_separate_prepare(ctx):
    """Already due: nothing to gain from opening first, the send opens its session."""
    with SmtpSink() as sink:
        seed_due_emails(ctx, 3, mailboxes=3, smtp_port=sink.port, due_at=EARLIER(ctx))
        worker = Worker(ctx, WorkerOptions(webhooks=False))
        seen = _connections_at_first_hand_over(ctx, sink, worker)
        worker.tick()
        worker.close()
    assert seen[0] == 0
    assert statuses(ctx) == Counter({"sent": 3})


def _carried_by_each_commit(ctx: Context, monkeypatch, mailboxes: int, worker: Worker) -> list[int]:
    """`mailboxes` mailboxes, two emails each, every first one held by the server. One
    is answered, so its mailbox's second email is due while the others still send; once
    that hand-over looks at the sends in flight (`Sends._gathered`), the server answers
    the rest. Returns how many emails each hand-over commit carried."""
    carried: list[int] = []
    hand_over_many = jobs.hand_over_many

    def counted(ctx_, claims, worker_id, finished=()):
        carried.append(len(claims))
        return hand_over_many(ctx_, claims, worker_id, finished)

    monkeypatch.setattr(jobs, "hand_over_many", counted)
    with SmtpSink() as sink:
        seed_due_emails(
            ctx, 2 * mailboxes, mailboxes=mailboxes, smtp_port=sink.port, due_at=EARLIER(ctx)
        )
        release = sink.hold_all_data()
        gathering = threading.Event()
        gathered = worker.sends._gathered

        def noted(due):
            if worker.sends.sending:
                gathering.set()
            return gathered(due)

        monkeypatch.setattr(worker.sends, "_gathered", noted)
        with ticking(worker, release):
            sink.wait_for_held(mailboxes, timeout=60)
            sink.let_go(1)
            assert gathering.wait(60)  # one mailbox is due, the others still sending
        received = sink.message_ids()
    assert len(received) == len(set(received)) == 2 * mailboxes
    assert statuses(ctx) == Counter({"sent": 2 * mailboxes})
    return carried


@pytest.mark.parametrize("mailboxes", [4, 2])
def test_a_hand_over_waits_for_the_sends_about_to_end_and_carries_them_together(
    database, settings, monkeypatch, mailboxes
):
    """When one first email is answered, its mailbox's second email is due while the
    others are still sending: the hand-over waits for them, so one commit carries all the
    second emails instead of one commit for the first and another for the rest. Also
    when as many mailboxes are due as are sending (two): left to take turns, the two
    halves of a worker's mailboxes never shared a commit again (bench/engine.py)."""
    ctx = Context(db=database, clock=SystemClock(), settings=settings)
    monkeypatch.setattr(sends, "GATHER_SECONDS", 60.0)  # a ceiling: it ends with the sends
    worker = Worker(ctx, WorkerOptions(webhooks=False))
    carried = _carried_by_each_commit(ctx, monkeypatch, mailboxes, worker)
    assert carried[:2] == [mailboxes, mailboxes]


def test_the_gather_waits_as_long_as_recent_commits_took(database, settings, monkeypatch):
    """The least wait is short, but a worker whose hand-over commits take long (here, as
    if each took a minute) waits up to that long, within GATHER_MOST_SECONDS, for the
    sends in flight: a send that ends just after a commit starts would wait for it and
    for the next."""
    ctx = Context(db=database, clock=SystemClock(), settings=settings)
    monkeypatch.setattr(sends, "GATHER_SECONDS", 0.000_001)
    monkeypatch.setattr(sends, "GATHER_MOST_SECONDS", 60.0)
    worker = Worker(ctx, WorkerOptions(webhooks=False))
    worker.sends._commit_seconds = 60.0
    carried = _carried_by_each_commit(ctx, monkeypatch, 4, worker)
    assert carried[:2] == [4, 4]


def test_first_emails_due_within_the_horizon_are_claimed_ahead_and_leave_when_due(ctx):
    """Three mailboxes whose emails fall due a second from now (a new wave: nothing sent
    yet): the tick claims them at once, opens their sessions before they are due, and
    hands each over at its due time, not before."""
    with SmtpSink() as sink:
        due = ctx.clock.now() + timedelta(seconds=1)
        seed_due_emails(ctx, 3, mailboxes=3, smtp_port=sink.port, due_at=due)
        worker = Worker(ctx, WorkerOptions(webhooks=False))  # horizon 2 s
        seen = _connections_at_first_hand_over(ctx, sink, worker)
        claimed_at = ctx.clock.now()
        worker.tick()
        worker.close()
        received = sink.message_ids()
    with ctx.db.read() as session:
        handed = list(session.scalars(select(Message.handed_at)))
        first_claimed = session.scalar(select(func.min(Message.created_at)))
    assert first_claimed == claimed_at  # claimed (and composed) ahead of the due time
    assert seen[0] == 3  # every session open at the first hand-over
    assert len(handed) == 3 and all(at is not None and at >= due for at in handed)
    assert len(received) == 3
    assert statuses(ctx) == Counter({"sent": 3})


def _leased(ctx: Context, mailbox_id: int) -> int:
    with ctx.db.read() as session:
        return session.scalar(
            select(func.count())
            .select_from(StepRun)
            .where(StepRun.mailbox_id == mailbox_id, StepRun.status == "sending")
        )


def test_a_mailbox_whose_server_lags_is_not_claimed_past_a_horizon_of_its_slots(ctx):
    """At 600 a minute a claim grants a horizon's slots (2 s: twenty-one), and the
    throttle grants ten more each second whatever the server takes. The server here
    answers nothing: while the emails queued here fill a horizon of slots, the rounds
    claim no more for the mailbox (before, ten more each round: the backlog held by one
    worker would grow until the leases ran out). Once they have left, it is claimed
    again."""
    with SmtpSink() as sink:
        [box] = seed_due_emails(
            ctx, 100, smtp_port=sink.port, per_minute_limit=600, due_at=EARLIER(ctx)
        )
        release = sink.hold_all_data()
        worker = Worker(ctx, WorkerOptions(webhooks=False))
        try:
            worker._claim_round()  # the first email leaves at once; the server holds it
            sink.wait_for_held(1)
            leased = [_leased(ctx, box)]
            for _ in range(4):
                ctx.clock.advance(timedelta(seconds=1))
                worker._claim_round()
                leased.append(_leased(ctx, box))
            assert leased == [21] * 5
            release.set()
            ctx.clock.advance(timedelta(seconds=5))  # every slot claimed has come
            worker.sends.pump()
            worker.sends.finish()
            assert not worker.sends.queues
            worker._claim_round()  # drained: the mailbox is claimed again
            assert _leased(ctx, box) == 21
            worker.sends.release()
        finally:
            worker.close()
        received = sink.message_ids()
    assert len(received) == len(set(received)) == worker.sent == 21
    assert _leased(ctx, box) == 0


def test_a_mailbox_at_ten_a_minute_may_hold_a_late_email_and_the_next(ctx):
    """At 10 a minute a horizon (2 s) holds no whole slot, but the floor is two: while
    its second email waits late behind the first (the server holds it), the mailbox's
    third is still claimed ahead of its slot, as before the bound. A third queued one
    would be past the floor: not claimed."""
    with SmtpSink() as sink:
        [box] = seed_due_emails(
            ctx, 4, smtp_port=sink.port, per_minute_limit=10, due_at=EARLIER(ctx)
        )
        release = sink.hold_all_data()
        worker = Worker(ctx, WorkerOptions(webhooks=False))
        try:
            leased = []
            for _ in range(4):  # slots at 0, 6, 12 and 18 s; the first never answered
                worker._claim_round()
                leased.append(_leased(ctx, box))
                ctx.clock.advance(timedelta(seconds=5))
            sink.wait_for_held(1)
            assert leased == [1, 2, 3, 3]  # the fourth: two already wait here
            assert len(worker.sends.queues[box]) == 2
            worker.sends.release()
        finally:
            release.set()  # the first email's answer, so the worker closes at once
            worker.sends.finish()
            worker.close()
