"""Rows bound to one statement (store/bound_rows.py), on both databases: what comes
back is what went in, and an instant compares as the column that stores it does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import JSON, Integer, Text, bindparam, func, select

from cadenza.domain.delivery_outcome import DeliveryOutcome
from cadenza.services.delivery.claims import claim_emails
from cadenza.store.bound_rows import BoundRows
from cadenza.store.models import DeliveryAttempt, Mailbox
from cadenza.store.prepared import Prepared
from cadenza.store.types import UTCDateTime
from tests.support.seed import seed_due_emails

ROWS = BoundRows("given", n=Integer(), word=Text(), at=UTCDateTime())
ECHO = Prepared(build=lambda dialect: select(ROWS.table(dialect)))


def test_rows_come_back_as_given(database):
    at = datetime(2026, 12, 5, 22, 30, 1, 250, tzinfo=UTC)
    given = [(1, "one", at), (2, None, at + timedelta(hours=1)), (3, 'it\'s "quoted"', None)]
    with database.engine.begin() as connection:
        rows = ECHO.run(connection, ROWS.bind(given, connection.dialect)).fetchall()
    assert [(n, word, _instant(at)) for n, word, at in rows] == given


def _instant(value):
    """The driver's value as an aware instant: PostgreSQL gives one, SQLite its text."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def test_no_rows_is_an_empty_table(database):
    with database.engine.begin() as connection:
        assert ECHO.run(connection, ROWS.bind([], connection.dialect)).fetchall() == []


SLOTS = BoundRows("slots", mailbox_id=Integer(), earliest=UTCDateTime())


def _left_before(dialect: str):
    slots = SLOTS.table(dialect)
    return (
        select(slots.c.mailbox_id)
        .join(Mailbox, Mailbox.id == slots.c.mailbox_id)
        .where(Mailbox.last_handed_at <= slots.c.earliest)
    )


LEFT_BEFORE = Prepared(build=_left_before)


def test_a_bound_instant_compares_with_a_stored_one_to_the_microsecond(ctx, database):
    [box] = seed_due_emails(ctx, 1, mailboxes=1)
    handed = datetime(2026, 12, 5, 22, 30, 1, 500_000, tzinfo=UTC)
    with ctx.db.transaction() as session:
        session.get_one(Mailbox, box).last_handed_at = handed
    one_before, same = handed - timedelta(microseconds=1), handed
    with database.engine.begin() as connection:
        for earliest, found in ((one_before, []), (same, [(box,)])):
            params = SLOTS.bind([(box, earliest)], connection.dialect)
            assert [tuple(r) for r in LEFT_BEFORE.run(connection, params).fetchall()] == found


def test_the_hand_overs_engine_plans_each_statement_once_on_postgresql(database):
    """The hand-over's keyed statements take arrays whose length would make PostgreSQL
    plan them anew at every run (store/db.py, Database.keyed_engine)."""
    if database.dialect != "postgresql":
        assert database.keyed_engine is database.engine
        return
    with database.keyed_engine.connect() as keyed, database.engine.connect() as plain:
        assert keyed.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_generic_plan"
        assert plain.exec_driver_sql("SHOW plan_cache_mode").scalar() == "auto"


DOCUMENTS = BoundRows("documents", n=Integer(), data=JSON())
DOCUMENT_ECHO = Prepared(build=lambda dialect: select(DOCUMENTS.table(dialect)))


def test_a_json_value_is_one_value_however_it_nests(database):
    """A JSON list is a value of its column, not a dimension of the rows' arrays (on
    PostgreSQL it goes as its text): every other column keeps its value."""
    given = [(1, [{"url": "https://example.org/a"}, {"url": "https://example.org/b"}]),
             (2, None), (3, {"nested": [1, [2, 3]]})]  # fmt: skip
    with database.engine.begin() as connection:
        params = DOCUMENTS.bind(given, connection.dialect)
        rows = DOCUMENT_ECHO.run(connection, params).fetchall()
    decoded = [(n, json.loads(data) if isinstance(data, str) else data) for n, data in rows]
    assert decoded == given


TRIES = BoundRows.of("tries", DeliveryAttempt, "message_id", "attempt", "outcome", "code", "reply")
INSERT_TRIES = Prepared(
    build=lambda dialect: TRIES.inserted(
        DeliveryAttempt, dialect, at=bindparam("now", type_=UTCDateTime())
    )
)


def test_rows_of_a_model_insert_with_its_column_types_checks(ctx, database):
    """`BoundRows.of` types each column as the model's table does: an outcome is written
    as its value and read back as the enum member, and one outside the vocabulary is
    refused before it reaches the database, as a plain INSERT of the column would be."""
    [box] = seed_due_emails(ctx, 1, mailboxes=1)
    [claim] = claim_emails(
        ctx, box, "w1", batch_size=1, horizon=timedelta(seconds=2), lease=timedelta(minutes=5)
    )
    now = ctx.clock.now()
    given = [
        (claim.message_pk, 1, DeliveryOutcome.TRANSIENT, 451, "try later"),
        (claim.message_pk, 2, "sent", None, None),
    ]
    with database.engine.begin() as connection:
        INSERT_TRIES.run(connection, {**TRIES.bind(given, connection.dialect), "now": now})
    with ctx.db.read() as session:
        written = session.execute(
            select(DeliveryAttempt.attempt, DeliveryAttempt.outcome, DeliveryAttempt.code).order_by(
                DeliveryAttempt.attempt
            )
        ).all()
    assert written == [(1, DeliveryOutcome.TRANSIENT, 451), (2, DeliveryOutcome.SENT, None)]
    assert all(type(outcome) is DeliveryOutcome for _, outcome, _ in written)
    bad = [(claim.message_pk, 3, "delivered-maybe", None, None)]
    refused = pytest.raises(ValueError, match="is not a DeliveryOutcome")
    with refused, database.engine.begin() as connection:
        INSERT_TRIES.run(connection, {**TRIES.bind(bad, connection.dialect), "now": now})
    with ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryAttempt)) == 2
