"""One hand-over commit for several mailboxes' next emails, and which mailboxes a worker
claims when several run (issue 15, section 2).

A batched hand-over marks the next email of several mailboxes `handing` in one commit:
each mailbox still has at most one `handing` email, so a crash right after that commit
leaves at most one `unknown` per mailbox, and recovery settles them like any other.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from cadenza.domain.delivery_outcome import DeliveryOutcome, DeliveryResult
from cadenza.engine import sends
from cadenza.engine.worker import Worker, WorkerOptions
from cadenza.services import worker_jobs as jobs
from cadenza.services.delivery import affinity, claims, recovery
from cadenza.services.delivery.handover import HandOver, hand_over_many
from cadenza.services.monitoring import heartbeat
from cadenza.store.models import DeliveryAttempt, Enrollment, Mailbox, Message, StepRun
from cadenza.store.prepared import Prepared
from tests.support.seed import seed_due_emails
from tests.support.smtp_sink import SmtpSink

LEASE = timedelta(minutes=1)
SENT = DeliveryResult(DeliveryOutcome.SENT, 250, "ok")


def seed(ctx, count, mailboxes):
    """`count` due emails spread over new capture mailboxes; the seed spaces their due
    times a microsecond apart, so the frozen clock moves a second on: all are due."""
    boxes = seed_due_emails(ctx, count, mailboxes=mailboxes)
    ctx.clock.advance(timedelta(seconds=1))
    return boxes


def claim_all(ctx, worker_id, mailbox_ids):
    made = claims.claim_emails(
        ctx, mailbox_ids, worker_id, batch_size=10, horizon=timedelta(minutes=5), lease=LEASE
    )
    return sorted(made, key=lambda c: (c.mailbox_id, c.slot))


def firsts(claimed):
    """The next email of each mailbox: what the worker passes to one hand-over."""
    seen: dict[int, object] = {}
    for claim in claimed:
        seen.setdefault(claim.mailbox_id, claim)
    return list(seen.values())


def statuses_by_mailbox(ctx) -> dict[int, Counter]:
    with ctx.db.read() as session:
        rows = session.execute(select(Message.mailbox_id, Message.status)).all()
    counted: dict[int, Counter] = {}
    for mailbox_id, status in rows:
        counted.setdefault(mailbox_id, Counter())[str(status)] += 1
    return counted


def test_one_commit_marks_the_next_email_of_each_mailbox_and_no_other(ctx):
    boxes = seed(ctx, 9, 3)  # three due emails per mailbox
    claimed = claim_all(ctx, "w1", boxes)
    assert len(claimed) == 9
    first = firsts(claimed)
    assert hand_over_many(ctx, first, "w1") == [HandOver.GO] * 3
    assert statuses_by_mailbox(ctx) == {box: Counter(handing=1, prepared=2) for box in boxes}
    # the outcomes ride with the next commit, which marks each mailbox's second email
    second = firsts([c for c in claimed if c not in first])
    done = [(claim, SENT) for claim in first]
    ctx.clock.advance(timedelta(seconds=1))  # each mailbox's spacing after its first
    assert hand_over_many(ctx, second, "w1", done) == [HandOver.GO] * 3
    assert statuses_by_mailbox(ctx) == {
        box: Counter(sent=1, handing=1, prepared=1) for box in boxes
    }


def test_a_commit_writes_its_sent_and_its_leaving_messages_in_one_statement(ctx, monkeypatch):
    """The messages table is the widest a commit writes: the sends it records and the
    emails it hands over are marked by one statement, each row to its own status."""
    boxes = seed(ctx, 6, 3)
    claimed = claim_all(ctx, "w1", boxes)
    first = firsts(claimed)
    assert hand_over_many(ctx, first, "w1") == [HandOver.GO] * 3
    ctx.clock.advance(timedelta(seconds=1))
    writes: list[str] = []
    plain = Prepared.run

    def noting(self, connection, params=None):
        sql = " ".join(self._plan(connection.dialect).sql.split())
        if sql.startswith("UPDATE messages"):
            writes.append(sql)
        return plain(self, connection, params)

    monkeypatch.setattr(Prepared, "run", noting)
    second = firsts([c for c in claimed if c not in first])
    done = [(claim, SENT) for claim in first]
    assert hand_over_many(ctx, second, "w1", done) == [HandOver.GO] * 3
    assert len(writes) == 1, writes
    with ctx.db.read() as session:
        for claim in first:
            message = session.get_one(Message, claim.message_pk)
            assert (message.status, message.sent_at, message.smtp_reply) == (
                "sent",
                ctx.clock.now(),
                "250 ok",
            )
        for claim in second:
            message = session.get_one(Message, claim.message_pk)
            assert (message.status, message.handed_at, message.sent_at) == (
                "handing",
                ctx.clock.now(),
                None,
            )


def test_a_login_refused_in_a_commit_stops_its_mailboxs_next_email_in_that_commit(ctx):
    """A commit records the outcomes before its last check: the server refusing the
    mailbox's login disconnects it, so the next email of that mailbox, in the same
    commit, does not leave; the other mailbox's does."""
    boxes = seed(ctx, 4, 2)
    claimed = claim_all(ctx, "w1", boxes)
    first = firsts(claimed)
    assert hand_over_many(ctx, first, "w1") == [HandOver.GO] * 2
    ctx.clock.advance(timedelta(seconds=1))
    second = firsts([c for c in claimed if c not in first])
    refused = DeliveryResult(DeliveryOutcome.AUTH_FAILED, 535, "5.7.8 credentials invalid")
    done = [(first[0], refused), (first[1], SENT)]
    assert hand_over_many(ctx, second, "w1", done) == [HandOver.SKIP, HandOver.GO]
    with ctx.db.read() as session:
        assert session.get_one(Mailbox, boxes[0]).connected is False
        waiting = [session.get_one(StepRun, c.run_id) for c in (first[0], second[0])]
        assert [(r.status, r.wait_reason) for r in waiting] == [
            ("pending", "mailbox_disconnected")
        ] * 2
        assert session.get_one(Message, second[0].message_pk).status == "prepared"
        assert session.get_one(Message, second[1].message_pk).status == "handing"


def test_a_commit_schedules_the_next_steps_of_its_sends_at_once(ctx, database, monkeypatch):
    """Most sends are not their sequence's last: recording three of them schedules each
    enrollment's next step, with one read of the three enrollments and one write of the
    three new runs, not one of each per email. Reads are counted however they run:
    through SQLAlchemy's execution, or compiled once (store/prepared.py)."""
    boxes = seed_due_emails(ctx, 3, mailboxes=3, steps=2)
    ctx.clock.advance(timedelta(seconds=1))
    first = claim_all(ctx, "w1", boxes)
    assert hand_over_many(ctx, first, "w1") == [HandOver.GO] * 3
    reads: list[str] = []
    writes: list[str] = []

    def noting(_conn, _cursor, statement, *_args) -> None:
        # statements compiled once (store/prepared.py) are heard as SQLAlchemy's own
        flat = " ".join(statement.split())
        if flat.startswith("SELECT enrollments.id"):
            reads.append(statement)
        elif flat.startswith("INSERT INTO step_runs"):
            writes.append("runs")

    event.listen(database.keyed_engine, "before_cursor_execute", noting)
    try:
        hand_over_many(ctx, [], "w1", [(claim, SENT) for claim in first])
    finally:
        event.remove(database.keyed_engine, "before_cursor_execute", noting)
    assert (len(reads), len(writes)) == (1, 1), (reads, writes)
    with ctx.db.read() as session:
        runs = session.execute(
            select(StepRun.enrollment_id, StepRun.step_position, StepRun.status)
        ).all()
    enrollments = {claim.enrollment_id for claim in first}
    assert sorted(runs) == sorted(
        [(e, 1, "sent") for e in enrollments] + [(e, 2, "pending") for e in enrollments]
    )


def test_a_hand_over_never_marks_two_emails_of_one_mailbox(ctx):
    [box] = seed(ctx, 2, 1)
    both = claim_all(ctx, "w1", [box])
    with pytest.raises(ValueError, match="one email per mailbox"):
        hand_over_many(ctx, both, "w1")
    assert statuses_by_mailbox(ctx) == {box: Counter(prepared=2)}  # nothing was marked


def test_each_email_of_a_batch_gets_its_own_answer(ctx):
    boxes = seed(ctx, 3, 3)
    first = firsts(claim_all(ctx, "w1", boxes))
    paused = first[1]
    with ctx.db.transaction() as session:
        session.get_one(Enrollment, paused.enrollment_id).state = "paused"
    answers = hand_over_many(ctx, first, "w1")
    assert answers == [HandOver.GO, HandOver.SKIP, HandOver.GO]
    with ctx.db.read() as session:
        assert session.get_one(StepRun, paused.run_id).status == "paused"


def test_a_crash_after_a_batched_commit_leaves_at_most_one_unknown_per_mailbox(ctx):
    boxes = seed(ctx, 12, 4)
    claimed = claim_all(ctx, "dead", boxes)
    assert hand_over_many(ctx, firsts(claimed), "dead") == [HandOver.GO] * 4
    # "dead" dies here, its four emails maybe on the wire; its lease runs out
    ctx.clock.advance(LEASE * 2)
    assert recovery.recover_expired(ctx) == 12
    counted = statuses_by_mailbox(ctx)
    assert counted == {box: Counter(unknown=1, prepared=2) for box in boxes}
    # another worker sends the rest, and never the unknown ones
    Worker(ctx, WorkerOptions(webhooks=False)).run_until(ctx.clock.now() + timedelta(hours=1))
    assert statuses_by_mailbox(ctx) == {box: Counter(unknown=1, sent=2) for box in boxes}


def test_a_worker_tick_hands_several_mailboxes_over_in_one_commit(ctx, database):
    commits = []

    def counted(_connection) -> None:
        commits.append(1)

    worker = Worker(ctx, WorkerOptions(webhooks=False))

    engines = {database.engine, database.keyed_engine}  # the hand-over's, on PostgreSQL

    def commits_of_a_tick() -> int:
        commits.clear()
        for engine in engines:
            event.listen(engine, "commit", counted)
        try:
            worker.tick()
        finally:
            for engine in engines:
                event.remove(engine, "commit", counted)
        return len(commits)

    [one] = seed(ctx, 1, 1)  # capture transport: each send ends at once
    alone = commits_of_a_tick()
    eight = seed(ctx, 8, 8)
    together = commits_of_a_tick()
    assert statuses_by_mailbox(ctx) == {box: Counter(sent=1) for box in [one, *eight]}
    # eight mailboxes' hand-overs share one commit, and their outcomes another: a tick
    # commits no more for eight emails than for one (per email it would be 14 more)
    assert together <= alone


# --- which mailboxes a worker claims -----------------------------------------------------


def choice_of(ctx, worker_id, candidates, limit=100, let_go=None):
    """How `worker_id` chooses when these are the mailboxes with due email, in order."""
    return affinity.mailboxes_for(
        ctx,
        worker_id,
        lambda n: candidates[:n],
        limit,
        live_within=jobs.LIVE_WITHIN,
        sticky_for=jobs.STICKY_FOR,
        let_go=let_go,
    )


def mailboxes_for(ctx, worker_id, candidates, limit=100, let_go=None):
    """What `worker_id` claims when these are the mailboxes with due email, in order."""
    return choice_of(ctx, worker_id, candidates, limit, let_go).mailboxes


def test_the_others_mailboxes_never_crowd_a_workers_own_out_of_the_list(ctx):
    boxes = seed(ctx, 8, 4)
    claims.claim_emails(  # "b" holds the two most overdue mailboxes
        ctx, boxes[:2], "b", batch_size=1, horizon=timedelta(minutes=5), lease=LEASE
    )
    heartbeat.beat(ctx, "b", ctx.clock.now(), {})
    assert mailboxes_for(ctx, "a", boxes, limit=2) == boxes[2:]  # asked for four


def test_a_mailbox_another_worker_holds_is_left_to_it(ctx):
    boxes = seed(ctx, 8, 4)
    held = claims.claim_emails(  # "a" holds the first two mailboxes' first emails
        ctx, boxes[:2], "a", batch_size=1, horizon=timedelta(minutes=5), lease=LEASE
    )
    assert {c.mailbox_id for c in held} == set(boxes[:2])
    # a holder that never beat is no live worker: its lease holds nothing back
    assert mailboxes_for(ctx, "b", boxes, limit=2) == boxes[:2]
    heartbeat.beat(ctx, "a", ctx.clock.now(), {})
    assert mailboxes_for(ctx, "b", boxes) == boxes[2:]
    assert mailboxes_for(ctx, "a", boxes) == boxes  # its own, and free ones
    ctx.clock.advance(LEASE * 2)  # "a" died: once its lease ran out, anyone may
    assert mailboxes_for(ctx, "b", boxes) == boxes


def test_no_worker_takes_more_new_mailboxes_than_its_share(ctx):
    boxes = seed(ctx, 6, 6)
    now = ctx.clock.now()
    heartbeat.beat(ctx, "b", now, {})  # a second live worker
    assert mailboxes_for(ctx, "a", boxes) == boxes[:3]
    heartbeat.beat(ctx, "c", now, {})
    assert mailboxes_for(ctx, "a", boxes) == boxes[:2]
    ctx.clock.advance(jobs.LIVE_WITHIN + timedelta(seconds=1))  # b and c went quiet
    assert mailboxes_for(ctx, "a", boxes) == boxes


def test_a_worker_holding_more_than_its_share_tops_up_only_its_share(ctx):
    boxes = seed(ctx, 8, 4)
    claims.claim_emails(
        ctx, boxes, "a", batch_size=1, horizon=timedelta(minutes=5), lease=LEASE
    )  # "a" holds all four (it was alone)
    assert mailboxes_for(ctx, "a", boxes) == boxes
    heartbeat.beat(ctx, "a", ctx.clock.now(), {})
    heartbeat.beat(ctx, "b", ctx.clock.now(), {})  # "b" starts: a's share is now two
    assert mailboxes_for(ctx, "a", boxes) == boxes[:2]  # the others drain
    assert mailboxes_for(ctx, "b", boxes) == []  # held by "a" until they do
    with ctx.db.transaction() as session:  # "a" sent what it held of the last two
        for run in session.scalars(select(StepRun).where(StepRun.mailbox_id.in_(boxes[2:]))):
            if run.status == "sending":
                run.status, run.locked_by, run.locked_until = "sent", None, None
    # "a" let them go when it stopped topping them up: free at once, not STICKY_FOR later
    assert mailboxes_for(ctx, "b", boxes) == boxes[2:]
    assert mailboxes_for(ctx, "a", boxes) == boxes[:2]  # still its share, its own


def test_a_mailbox_let_go_is_not_taken_back_while_its_last_email_is_in_flight(ctx):
    """Once let go, a mailbox still held by this worker (its last email in flight) is its
    load, not its own: when the order of the mailboxes with due email changes, the
    worker does not take it back and let go one it kept instead, which would give
    back that one's queued emails every round and hand the other worker nothing."""
    boxes = seed(ctx, 8, 4)
    claims.claim_emails(ctx, boxes, "a", batch_size=1, horizon=timedelta(minutes=5), lease=LEASE)
    heartbeat.beat(ctx, "a", ctx.clock.now(), {})
    heartbeat.beat(ctx, "b", ctx.clock.now(), {})
    let_go: list[int] = []
    assert mailboxes_for(ctx, "a", boxes, let_go=let_go.extend) == boxes[:2]
    assert let_go == boxes[2:]
    # their emails are still a's (in flight); now they are the most overdue
    reordered = boxes[2:] + boxes[:2]
    assert mailboxes_for(ctx, "a", reordered, let_go=let_go.extend) == boxes[:2]
    assert let_go == boxes[2:]  # nothing more let go
    with ctx.db.read() as session:
        notes = dict(session.execute(select(Mailbox.id, Mailbox.claimed_by)).all())
    assert [notes[box] for box in boxes] == ["a", "a", None, None]


def _claim_round(worker: Worker, beside: bool) -> None:
    """One claim round as a running worker makes it: on its loop's thread, or (beside)
    as its claimer's thread does, whose claims and let-go mailboxes are offered to the
    loop, which takes them the next time it looks and hands over what is due."""
    worker._claim_round(beside=beside)
    if beside:
        worker.sends.take_offers()
        worker.sends.pump(until=worker.ctx.clock.now(), wait=False)


@pytest.mark.parametrize("beside", [False, True], ids=["claims-on-the-loop", "claims-beside"])
def test_a_worker_over_its_share_gives_back_what_it_has_not_handed_over(ctx, beside):
    """The first worker to start claims every mailbox. When a second one starts, the
    first lets half of them go and gives back their claimed emails that have not left,
    so the second sends them now (the same stored messages), not once the first has
    sent them (bench/engine.py: 2,900 and 2,100 emails of 5,000 before). The email of
    a let-go mailbox already handed over stays the first worker's, recorded by it.
    Also when the first claims beside its hand-overs (docs/engine.md): the mailboxes it
    lets go reach its loop as an offer, as its claims do."""
    boxes = seed(ctx, 12, 4)  # three due emails per mailbox, a spacing apart
    options = WorkerOptions(webhooks=False, batch_size=2)  # two a mailbox and claim
    a, b = Worker(ctx, options, worker_id="a"), Worker(ctx, options, worker_id="b")
    try:
        heartbeat.beat(ctx, "a", ctx.clock.now(), {})
        _claim_round(a, beside)  # alone: all four mailboxes; each one's first email leaves now
        queued = {c.message_pk: c.mailbox_id for q in a.sends.queues.values() for c in q}
        assert sorted(Counter(queued.values()).values()) == [1, 1, 1, 1]
        heartbeat.beat(ctx, "b", ctx.clock.now(), {})  # b starts: a's share is two
        _claim_round(a, beside)
        kept = set(a.sends.queues)
        assert len(kept) == 2
        given_back = {pk for pk, box in queued.items() if box not in kept}
        with ctx.db.read() as session:
            runs = session.execute(
                select(StepRun.status, StepRun.locked_by, Message.status)
                .join(Message, Message.step_run_id == StepRun.id)
                .where(Message.id.in_(given_back))
            ).all()
        # pending again, for any worker, with its stored message
        assert [(str(run), by, str(message)) for run, by, message in runs] == [
            ("pending", None, "prepared")
        ] * 2
        a.sends.finish()  # the first emails, in flight meanwhile, are recorded by a
        b._claim_round()  # b takes the two mailboxes a let go, and their emails
        taken = {c.message_pk: c.mailbox_id for q in b.sends.queues.values() for c in q}
        assert set(taken.values()) == {queued[pk] for pk in given_back}
        assert given_back <= set(taken)  # the same stored messages: the same Message-IDs
        ctx.clock.advance(timedelta(seconds=1))
        for worker in (a, b):
            worker.sends.pump()
            worker.sends.finish()
        assert (a.sent, b.sent) == (8, 4)
    finally:
        a.close()
        b.close()
    assert statuses_by_mailbox(ctx) == {box: Counter(sent=3) for box in boxes}
    with ctx.db.read() as session:
        attempts = session.scalars(select(Message.id).join(DeliveryAttempt)).all()
    assert sorted(Counter(attempts).values()) == [1] * 12  # each tried once


@pytest.mark.parametrize("claimed_again", [False, True], ids=["let-go", "let-go-and-claimed-again"])
def test_a_mailbox_let_go_while_a_hand_over_gathers_is_given_back_not_handed_over(
    ctx, monkeypatch, claimed_again
):
    """The loop runs offered work while a hand-over waits for the sends about to end
    (`Sends._gathered`). When that work lets go a mailbox whose email is already due,
    the mailbox's email is given back with the rest and the hand-over goes on without
    it: before, the due list still named it and the worker ended on a KeyError
    (bench/engine.py, PostgreSQL ×2, the claimer's let-go arriving mid-gather). Claimed
    again by a round offered meanwhile, it is handed over once, from its new claim."""
    monkeypatch.setattr(sends, "GATHER_SECONDS", 60.0)  # a ceiling: it ends with the sends
    with SmtpSink() as sink:
        [first] = seed_due_emails(
            ctx, 1, smtp_port=sink.port, due_at=ctx.clock.now() - timedelta(seconds=1)
        )
        [later] = seed_due_emails(
            ctx, 1, smtp_port=sink.port, due_at=ctx.clock.now() + timedelta(seconds=1)
        )
        sink.hold_all_data()
        worker = Worker(ctx, WorkerOptions(webhooks=False), worker_id="a")
        try:
            heartbeat.beat(ctx, "a", ctx.clock.now(), {})
            worker._claim_round()  # both claimed; the first mailbox's email leaves now
            sink.wait_for_held(1)
            assert set(worker.sends.queues) == {later}
            ctx.clock.advance(timedelta(seconds=1))  # the later one is due too
            gathered = worker.sends._gathered
            waited: list[list[tuple]] = []

            def let_go_meanwhile(due):
                waited.append(list(due))

                def let_go() -> None:  # what the claimer offers, arriving mid-gather
                    worker.sends.release([later])
                    if claimed_again:
                        worker._offer(
                            claims.claim_emails(
                                ctx, [later], "a", batch_size=1, horizon=LEASE, lease=LEASE
                            )
                        )
                    sink.let_go(2)  # and the send it waits for ends

                worker.sends.offer(let_go)
                return gathered(due)

            monkeypatch.setattr(worker.sends, "_gathered", let_go_meanwhile)
            worker.sends.pump()
            worker.sends.finish()
        finally:
            worker.close()
        assert [[box for _, box in due] for due in waited][:1] == [[later]]
        sent = 2 if claimed_again else 1
        assert worker.sent == sent
        received = sink.message_ids()
        assert len(received) == len(set(received)) == sent
    if claimed_again:
        assert statuses_by_mailbox(ctx) == {first: Counter(sent=1), later: Counter(sent=1)}
        return
    assert statuses_by_mailbox(ctx) == {first: Counter(sent=1), later: Counter(prepared=1)}
    with ctx.db.read() as session:
        run = session.execute(
            select(StepRun.status, StepRun.locked_by).where(StepRun.mailbox_id == later)
        ).one()
    assert (str(run.status), run.locked_by) == ("pending", None)  # any worker's to send


def test_a_mailbox_held_enough_is_kept_but_takes_no_place_in_the_round(ctx):
    """A mailbox whose queued emails already fill a horizon (engine/worker.py,
    `_held_enough`) is not claimed, and is not let go: still this worker's. The round's
    place it would have taken goes to the next mailbox with due email."""
    now = ctx.clock.now()
    [full] = seed_due_emails(ctx, 4, due_at=now - timedelta(minutes=2))  # the most overdue
    [other] = seed_due_emails(ctx, 4, due_at=now - timedelta(minutes=1))
    heartbeat.beat(ctx, "a", now, {})
    claim = {"batch_size": 1, "horizon": timedelta(minutes=5), "lease": LEASE}
    [first] = jobs.claim_due(ctx, "a", mailboxes=1, **claim)
    assert first.mailbox_id == full  # and its next emails are still the most overdue
    let_go: list[int] = []
    made = jobs.claim_due(ctx, "a", mailboxes=1, held_enough={full}, let_go=let_go.extend, **claim)
    assert [c.mailbox_id for c in made] == [other]
    assert let_go == []
    with ctx.db.read() as session:
        notes = dict(session.execute(select(Mailbox.id, Mailbox.claimed_by)).all())
    assert notes == {full: "a", other: "a"}


def test_a_worker_lets_go_only_its_own_mailboxes_beyond_its_share(ctx):
    boxes = seed(ctx, 8, 4)
    lease = {"batch_size": 1, "horizon": timedelta(minutes=5), "lease": LEASE}
    claims.claim_emails(ctx, boxes[3:], "b", **lease)  # the last mailbox is "b"'s
    claims.claim_emails(ctx, boxes[:3], "a", **lease)  # the first three "a"'s
    for worker in ("a", "b", "c"):  # three live workers: a share is two mailboxes
        heartbeat.beat(ctx, worker, ctx.clock.now(), {})
    assert mailboxes_for(ctx, "a", boxes) == boxes[:2]
    with ctx.db.read() as session:
        notes = dict(session.execute(select(Mailbox.id, Mailbox.claimed_by)).all())
    # its third is let go; the other worker's note is not its to clear
    assert [notes[box] for box in boxes] == ["a", "a", None, "b"]


def test_a_mailbox_stays_with_the_live_worker_that_last_claimed_it(ctx):
    """A mailbox at its per-minute limit holds nothing between two sends: it is still
    left to the worker that claimed its last email, for STICKY_FOR after that claim, so
    its emails keep leaving over that worker's connection (bench/latency.py). A claim
    that grants nothing (a throttled mailbox) does not make it the claimer's."""
    boxes = seed(ctx, 4, 2)
    now = ctx.clock.now()
    heartbeat.beat(ctx, "a", now, {})
    heartbeat.beat(ctx, "b", now, {})
    [sent] = claims.claim_emails(  # "a" takes the first mailbox's first email...
        ctx, boxes[0], "a", batch_size=1, horizon=timedelta(minutes=5), lease=LEASE
    )
    with ctx.db.transaction() as session:  # ...and sends it: it holds nothing there now
        run = session.get_one(StepRun, sent.run_id)
        run.status, run.locked_by, run.locked_until = "sent", None, None
    assert mailboxes_for(ctx, "b", boxes) == boxes[1:]
    assert mailboxes_for(ctx, "a", boxes) == boxes[:1]  # its own: its share of two
    ctx.clock.advance(jobs.STICKY_FOR - timedelta(seconds=1))
    heartbeat.beat(ctx, "a", ctx.clock.now(), {})
    heartbeat.beat(ctx, "b", ctx.clock.now(), {})
    assert mailboxes_for(ctx, "b", boxes) == boxes[1:]
    ctx.clock.advance(timedelta(seconds=1))
    assert mailboxes_for(ctx, "b", boxes[:1]) == boxes[:1]  # "a" let it be: free again
    with ctx.db.transaction() as session:  # the mailbox sends nothing more for an hour
        session.get_one(Mailbox, boxes[1]).next_send_at = ctx.clock.now() + timedelta(hours=1)
    nothing = claims.claim_emails(
        ctx, boxes[1], "a", batch_size=1, horizon=timedelta(minutes=5), lease=LEASE
    )
    assert nothing == []
    assert mailboxes_for(ctx, "b", boxes[1:]) == boxes[1:]  # a claim of nothing keeps nothing


def test_a_mailbox_whose_last_email_left_late_is_not_offered_before_its_spacing(ctx, monkeypatch):
    """The worker knows when it handed a mailbox's last email over. When that one left
    late, the next claim's email is offered a spacing after it, not at its planned slot:
    offered sooner, the database could only answer WAIT, at the price of a hand-over's
    statements (at 250 ms servers a third of the hand-overs did, bench/latency.py)."""
    seed_due_emails(ctx, 2, mailboxes=1, per_minute_limit=1)  # one a minute
    ctx.clock.advance(timedelta(seconds=1))
    answers: list[HandOver] = []
    real = jobs.hand_over_many

    def answered(*args, **kwargs):
        made = real(*args, **kwargs)
        answers.extend(made)
        return made

    monkeypatch.setattr(jobs, "hand_over_many", answered)
    worker = Worker(ctx, WorkerOptions(webhooks=False))
    try:
        made = jobs.claim_due(
            ctx, worker.id, batch_size=10, horizon=timedelta(seconds=2), lease=LEASE
        )
        assert len(made) == 1  # the throttle grants one a minute
        ctx.clock.advance(timedelta(seconds=30))  # it leaves half a spacing late
        worker._queue(made)
        worker.sends.finish()
        ctx.clock.advance(timedelta(seconds=31))  # the second's slot has come...
        assert worker.tick() == 1
    finally:
        worker.close()
    with ctx.db.read() as session:
        first, second = session.scalars(select(Message.handed_at).order_by(Message.id)).all()
    assert second - first == timedelta(minutes=1)  # ...but the mailbox was free only now
    assert answers == [HandOver.GO, HandOver.GO]


def test_a_commit_runs_as_many_statements_for_eight_mailboxes_as_for_one(
    ctx, database, monkeypatch
):
    """The common path's statements take all of a commit's emails at once (store/
    bound_rows.py): recording eight sends and handing eight emails over costs the
    database no more statements than one of each."""
    ran: list[str] = []
    plain = Prepared.run

    def counting(self, *args, **kwargs):
        ran.append("run")
        return plain(self, *args, **kwargs)

    monkeypatch.setattr(Prepared, "run", counting)

    def statements_of(mailboxes: int) -> int:
        boxes = seed(ctx, 2 * mailboxes, mailboxes)
        claimed = claim_all(ctx, "w1", boxes)
        first = firsts(claimed)
        assert hand_over_many(ctx, first, "w1") == [HandOver.GO] * mailboxes
        ctx.clock.advance(timedelta(seconds=1))
        second = firsts([c for c in claimed if c not in first])
        ran.clear()
        event.listen(database.keyed_engine, "before_cursor_execute", orm_statement)
        try:
            done = [(claim, SENT) for claim in first]
            assert hand_over_many(ctx, second, "w1", done) == [HandOver.GO] * mailboxes
        finally:
            event.remove(database.keyed_engine, "before_cursor_execute", orm_statement)
        counted = statuses_by_mailbox(ctx)
        assert {box: counted[box] for box in boxes} == {
            box: Counter(sent=1, handing=1) for box in boxes
        }
        return len(ran)

    def orm_statement(*_args) -> None:
        ran.append("statement")

    one = statements_of(1)
    assert one > 0
    assert statements_of(8) == one


def test_two_workers_choosing_at_once_never_claim_the_same_mailboxes(ctx):
    """Started together, both workers see the same mailboxes free and choose the same
    half. The first to claim notes them as its own; the second's claim, which chose them
    before that note, leaves them out (it would otherwise send their emails beside the
    first's) and its next round chooses the other half."""
    boxes = seed(ctx, 16, 8)
    now = ctx.clock.now()
    for worker in ("a", "b"):
        heartbeat.beat(ctx, worker, now, {})

    first, second = choice_of(ctx, "a", boxes), choice_of(ctx, "b", boxes)
    assert first.mailboxes == second.mailboxes == boxes[:4]

    def claim(worker, choice):  # the first of each mailbox's two emails
        return claims.claim_emails(
            ctx, choice.mailboxes, worker, batch_size=1, horizon=timedelta(minutes=5),
            lease=LEASE, choice=choice,
        )  # fmt: skip

    assert {c.mailbox_id for c in claim("a", first)} == set(boxes[:4])
    assert claim("b", second) == []
    again = choice_of(ctx, "b", boxes)
    assert again.mailboxes == boxes[4:]
    assert {c.mailbox_id for c in claim("b", again)} == set(boxes[4:])


def test_a_dead_workers_fresh_note_does_not_keep_its_mailbox_from_the_others(ctx):
    """A worker that noted a mailbox and died: once it is no longer live, the others
    choose its mailbox over its fresh note (its leased emails are recovered later), and
    the claim takes the mailbox's other emails: the note was seen when it chose."""
    boxes = seed(ctx, 4, 2)
    claims.claim_emails(
        ctx, boxes[:1], "a", batch_size=1, horizon=timedelta(minutes=5), lease=LEASE
    )  # "a" noted the first mailbox, and never beat: no live worker, its note fresh
    choice = choice_of(ctx, "b", boxes)
    assert choice.mailboxes == boxes and choice.notes == {boxes[0]: "a"}
    claimed = claims.claim_emails(
        ctx, choice.mailboxes, "b", batch_size=10, horizon=timedelta(minutes=5),
        lease=LEASE, choice=choice,
    )  # fmt: skip
    assert {c.mailbox_id for c in claimed} == set(boxes)


def test_a_claim_leaves_out_only_a_note_made_since_the_choice():
    """Which notes the claim honours, each alone: none, its own, the one it chose over,
    one made since (left out), and one older than the sticky time (anyone's)."""
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    choice = affinity.Choice([1], jobs.STICKY_FOR, {1: "dead"})

    def taken(claimed_by, ago=timedelta(seconds=1)):
        mailbox = Mailbox(id=1, claimed_by=claimed_by, claimed_at=now - ago)
        return choice.taken_meanwhile(mailbox, "me", now)

    assert [taken(None), taken("me"), taken("dead"), taken("other")] == [
        False, False, False, True,
    ]  # fmt: skip
    assert taken("other", ago=jobs.STICKY_FOR + timedelta(seconds=1)) is False
