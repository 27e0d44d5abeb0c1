"""Statements run in order as one call to PostgreSQL's server (store/server_batch.py),
and the hand-over commit that uses it (services/delivery/handover.py): the same
results as one statement at a time, on both databases, one round trip on PostgreSQL,
and, where the usual commit finds something unusual, nothing of it kept."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import Integer, bindparam, func, select, text, update

from cadenza.domain.delivery_outcome import DeliveryOutcome, DeliveryResult
from cadenza.domain.enums import EnrollmentState
from cadenza.services.delivery import claims
from cadenza.services.delivery.handover import HandOver, hand_over_many
from cadenza.services.events_out.listeners import LISTENERS
from cadenza.store import libpq_statements, server_batch
from cadenza.store.bound_rows import BoundRows
from cadenza.store.models import (
    AutomationRule,
    DeliveryAttempt,
    Enrollment,
    Mailbox,
    Message,
    SequenceCount,
    User,
)
from cadenza.store.prepared import Prepared
from cadenza.store.server_batch import BatchUnavailable, ServerBatch
from tests.support.seed import seed_due_emails

SENT = DeliveryResult(DeliveryOutcome.SENT, 250, "2.0.0 queued")
_LIMITS = BoundRows("limits", mailbox_id=Integer(), per_minute=Integer())


def _statements() -> list[Prepared]:
    """A write that returns rows, a write that does not, a read whose two columns share
    a name, and a read whose only type is its cast (a JSON key): what a batch carries."""

    def limits(dialect: str):
        rows = _LIMITS.table(dialect)
        return (
            update(Mailbox)
            .where(Mailbox.id == rows.c.mailbox_id)
            .values(per_minute_limit=rows.c.per_minute)
            .returning(Mailbox.id, Mailbox.per_minute_limit)
        )

    return [
        Prepared(build=limits),
        Prepared(update(Mailbox).values(daily_limit=bindparam("daily", type_=Integer))),
        Prepared(
            select(Mailbox.id, User.id, Mailbox.daily_limit)
            .join(User, User.id == Mailbox.owner_id)
            .order_by(Mailbox.id)
        ),
        LISTENERS,
    ]


def _params(connection, mailboxes: list[int]) -> list[dict]:
    return [
        _LIMITS.bind([(box, 20 + i) for i, box in enumerate(mailboxes)], connection.dialect),
        {"daily": 77},
        {},
        {},
    ]


@pytest.fixture
def mailboxes(ctx) -> list[int]:
    boxes = seed_due_emails(ctx, 3, mailboxes=3)
    with ctx.db.transaction() as session:
        session.add(
            AutomationRule(
                name="on reply", trigger={"type": "replied"}, action={"type": "unenroll"},
                enabled=True, created_at=ctx.clock.now(), updated_at=ctx.clock.now(),
            )
        )  # fmt: skip
    return boxes


def _results(ctx, batch: ServerBatch, boxes: list[int]):
    with ctx.db.keyed_engine.begin() as connection:
        results = batch.run(connection, _params(connection, boxes))
        read = [(sorted(r.fetchall()), r.rowcount) for r in results]
        connection.rollback()
    return read


def test_a_batch_gives_what_its_statements_give_one_by_one(ctx, database, mailboxes, monkeypatch):
    together = _results(ctx, ServerBatch("together", _statements()), mailboxes)
    monkeypatch.setattr(ServerBatch, "_installed", lambda self, connection: False)
    apart = _results(ctx, ServerBatch("apart", _statements()), mailboxes)
    assert together == apart
    limits, daily, owners, heard = together
    assert limits == (sorted((box, 20 + i) for i, box in enumerate(mailboxes)), 3)
    assert daily == ([], 3)
    assert [row[2] for row in owners[0]] == [77, 77, 77]  # the earlier write, seen
    assert ("rule", None, "replied") in heard[0]


def test_a_batch_is_one_round_trip_on_postgresql(ctx, database, mailboxes, monkeypatch):
    if database.dialect != "postgresql":
        pytest.skip("SQLite runs in the worker's process: it has no round trips")
    batch = ServerBatch("counted", _statements())
    _results(ctx, batch, mailboxes)  # created on first use, on a connection of its own
    calls = Counter()
    plain = libpq_statements.run

    def counting(connection, statement, params):
        calls[statement.sql.split(b"(")[0]] += 1
        return plain(connection, statement, params)

    monkeypatch.setattr(libpq_statements, "run", counting)
    _results(ctx, batch, mailboxes)
    assert len(calls) == 1 and sum(calls.values()) == 1, calls
    [called] = calls
    assert called.startswith(b"SELECT cadenza_batch_counted_")


def test_a_changed_statement_is_a_new_function(ctx, database, mailboxes):
    if database.dialect != "postgresql":
        pytest.skip("only PostgreSQL has the functions")
    changed = [*_statements()[:3], Prepared(select(func.count()).select_from(Mailbox))]
    names = set()
    for steps in (_statements(), changed):
        batch = ServerBatch("versions", steps)
        _results(ctx, batch, mailboxes)
        with ctx.db.engine.connect() as connection:
            names |= set(connection.scalars(text(
                "SELECT proname FROM pg_proc WHERE proname LIKE 'cadenza_batch_versions_%'"
            )))  # fmt: skip
    assert len(names) == 2


def test_a_dropped_function_is_made_again(ctx, database, mailboxes):
    if database.dialect != "postgresql":
        pytest.skip("only PostgreSQL has the functions")
    batch = ServerBatch("dropped", _statements())
    first = _results(ctx, batch, mailboxes)
    with ctx.db.engine.begin() as connection:
        name = connection.scalar(
            text("SELECT proname FROM pg_proc WHERE proname LIKE 'cadenza_batch_dropped_%'")
        )
        connection.execute(text(f"DROP FUNCTION {name}"))
    with pytest.raises(BatchUnavailable):
        _results(ctx, batch, mailboxes)
    assert _results(ctx, batch, mailboxes) == first


def test_a_function_the_server_refuses_runs_the_statements_one_by_one(
    ctx, database, mailboxes, monkeypatch, caplog
):
    if database.dialect != "postgresql":
        pytest.skip("only PostgreSQL has the functions")
    apart = _results(ctx, ServerBatch("refusal_apart", _statements()), mailboxes)
    built = server_batch._function_of

    def refused(*args):  # as a role without the right to create functions is refused
        made = built(*args)
        return server_batch._Function(
            made.name, "CREATE FUNCTION nowhere.f() RETURNS int AS 'SELECT 1' LANGUAGE sql",
            made.call, made.returns_rows,
        )  # fmt: skip

    monkeypatch.setattr(server_batch, "_function_of", refused)
    with caplog.at_level(logging.WARNING, logger="cadenza.store.server_batch"):
        assert _results(ctx, ServerBatch("refusal", _statements()), mailboxes) == apart
    assert [r.message for r in caplog.records] == ["batch_function_unavailable"]


def _claimed(ctx, count: int, mailboxes: int):
    """Each mailbox's claimed emails, first and second: `count` over `mailboxes`."""
    boxes = seed_due_emails(ctx, count, mailboxes=mailboxes)
    ctx.clock.advance(timedelta(seconds=1))
    made = claims.claim_emails(
        ctx, boxes, "w1", batch_size=10, horizon=timedelta(minutes=5), lease=timedelta(minutes=1)
    )
    ordered = sorted(made, key=lambda c: (c.mailbox_id, c.slot))
    first = {c.mailbox_id: c for c in reversed(ordered)}
    second = [c for c in ordered if c not in first.values()]
    return [first[box] for box in boxes], second


def _sent_figures(ctx) -> int:
    with ctx.db.read() as session:
        return session.scalar(
            select(func.coalesce(func.sum(SequenceCount.n), 0)).where(SequenceCount.key == "sent")
        )


def _handed_over_once(ctx, first) -> None:
    """Each of `first` sent, tried once, counted once, its enrollment finished."""
    with ctx.db.read() as session:
        attempts = session.execute(select(DeliveryAttempt.message_id, DeliveryAttempt.attempt))
        assert sorted(attempts) == sorted((c.message_pk, 1) for c in first)
        statuses = session.scalars(
            select(Message.status).where(Message.id.in_([c.message_pk for c in first]))
        ).all()
        assert statuses == ["sent"] * len(first)
        states = session.scalars(
            select(Enrollment.state).where(Enrollment.id.in_([c.enrollment_id for c in first]))
        ).all()
        assert states == [EnrollmentState.FINISHED] * len(first)
    assert _sent_figures(ctx) == len(first)


def test_a_usual_commit_is_one_call_on_postgresql(ctx, database, monkeypatch):
    """Recording three sends and handing three emails over: the hand-over's statements
    go as one call, then the commit's figures (with its BEGIN and COMMIT, four round
    trips where they were ten)."""
    first, second = _claimed(ctx, 6, 3)
    assert hand_over_many(ctx, first, "w1") == [HandOver.GO] * 3
    ctx.clock.advance(timedelta(seconds=1))
    calls: list[bytes] = []
    plain = libpq_statements.run

    def counting(connection, statement, params):
        calls.append(statement.sql[:26])
        return plain(connection, statement, params)

    monkeypatch.setattr(libpq_statements, "run", counting)
    done = [(claim, SENT) for claim in first]
    assert hand_over_many(ctx, second, "w1", done) == [HandOver.GO] * 3
    if database.dialect == "postgresql":
        assert calls == [b"SELECT cadenza_batch_hand_", b"INSERT INTO sequence_counts"[:26]]
    _handed_over_once(ctx, first)
    with ctx.db.read() as session:
        statuses = session.scalars(
            select(Message.status).where(Message.id.in_([c.message_pk for c in second]))
        ).all()
    assert statuses == ["handing"] * 3


def test_an_unusual_commit_keeps_nothing_of_the_usual_one(ctx):
    """An enrollment paused between its email's claim and its hand-over: the usual
    commit finds it, is rolled back, and the commit is made step by step: that email
    stays, the others leave, and each send before is recorded and counted once."""
    first, second = _claimed(ctx, 6, 3)
    assert hand_over_many(ctx, first, "w1") == [HandOver.GO] * 3
    ctx.clock.advance(timedelta(seconds=1))
    with ctx.db.transaction() as session:
        session.execute(
            update(Enrollment)
            .where(Enrollment.id == second[0].enrollment_id)
            .values(state=EnrollmentState.PAUSED)
        )
    done = [(claim, SENT) for claim in first]
    answers = hand_over_many(ctx, second, "w1", done)
    assert answers == [HandOver.SKIP, HandOver.GO, HandOver.GO]
    _handed_over_once(ctx, first)
    with ctx.db.read() as session:
        statuses = session.scalars(
            select(Message.status)
            .where(Message.id.in_([c.message_pk for c in second]))
            .order_by(Message.mailbox_id)
        ).all()
    assert statuses == ["prepared", "handing", "handing"]
