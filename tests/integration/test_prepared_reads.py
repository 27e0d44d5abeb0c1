"""Reads compiled once and run on the driver's cursor (store/prepared.py), on both
databases: their values are what the ORM gives, SQLAlchemy's listeners hear them, and a
single read (`Database.single_read`) runs outside any transaction. Then the enroll
request's reads of its contacts (services/enrollment/candidates.py) on hostile ids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, event, func, select

from cadenza.services.crm.contacts import ContactView, create_contact
from cadenza.services.enrollment.candidates import (
    blocked_patterns,
    contacts_from,
    contacts_read,
    is_blocked,
    row_ids,
)
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.store.models import BlockedAddress, Contact
from cadenza.store.prepared import Prepared, rows_together
from tests.conftest import World
from tests.support.round_trips import traced, traced_engine

CONTACT = Prepared(
    select(
        Contact.id, Contact.properties, Contact.bounced_at, Contact.blocked, Contact.email
    ).where(Contact.id == bindparam("contact_id"))
)


def _stored(ctx, **fields) -> Contact:
    contact = create_contact(ctx, {"email": "ann@corp.example", "firstname": "Ann"})
    with ctx.db.transaction() as session:
        row = session.get_one(Contact, contact.id)
        for name, value in fields.items():
            setattr(row, name, value)
    with ctx.db.read() as session:
        return session.get_one(Contact, contact.id)


def test_rows_are_read_as_the_orm_reads_them(ctx):
    bounced = datetime(2026, 12, 6, 21, 30, 5, 123456, tzinfo=UTC)
    orm = _stored(ctx, properties={"plan": "pro", "seats": 12}, bounced_at=bounced, blocked=True)
    with ctx.db.read() as session:
        [row] = CONTACT.rows(session.connection(), {"contact_id": orm.id})
    assert row == (orm.id, {"plan": "pro", "seats": 12}, bounced, True, "ann@corp.example")
    assert row[2].tzinfo is not None  # an aware instant on SQLite too, not its text
    assert type(row[3]) is bool  # not SQLite's 1


def test_nulls_stay_none_and_no_row_is_an_empty_list(ctx):
    orm = _stored(ctx)
    with ctx.db.read() as session:
        [row] = CONTACT.rows(session.connection(), {"contact_id": orm.id})
        assert CONTACT.rows(session.connection(), {"contact_id": orm.id + 1000}) == []
    assert row[2] is None
    assert row[3] is False


def test_sqlalchemys_listeners_hear_a_prepared_statement(ctx, database):
    orm = _stored(ctx)
    heard: list[str] = []

    def note(_connection, _cursor, statement, *_args) -> None:
        heard.append(" ".join(statement.split()))

    event.listen(database.engine, "before_cursor_execute", note)
    try:
        with ctx.db.read() as session:
            CONTACT.rows(session.connection(), {"contact_id": orm.id})
    finally:
        event.remove(database.engine, "before_cursor_execute", note)
    assert any(s.startswith("SELECT contacts.id, contacts.properties") for s in heard), heard


def test_a_single_read_begins_no_transaction(ctx, database):
    orm = _stored(ctx)
    heard: list[str] = []

    def note(_connection, _cursor, statement, *_args) -> None:
        heard.append(statement.strip().upper())

    event.listen(database.engine, "before_cursor_execute", note)
    try:
        with ctx.db.single_read() as connection:
            [row] = CONTACT.rows(connection, {"contact_id": orm.id})
            driver = connection.connection.driver_connection
            if database.dialect == "postgresql":
                assert driver.autocommit  # the read is its own transaction
                assert driver.info.transaction_status.name == "IDLE"
            else:
                assert not driver.in_transaction
    finally:
        event.remove(database.engine, "before_cursor_execute", note)
    assert row[0] == orm.id
    assert not any(s.startswith("BEGIN") for s in heard), heard
    # the connection goes back to the pool as it came: the next transaction is one
    with ctx.db.transaction() as session:
        assert session.connection().connection.driver_connection is not None
        assert session.get_one(Contact, orm.id).email == "ann@corp.example"


def read_contacts(session, ids, *, lock):
    connection = session.connection()
    [rows] = rows_together(connection, [contacts_read(connection, ids, lock=lock)])
    return contacts_from(rows)


@pytest.mark.parametrize("lock", [False, True])
def test_ids_no_row_can_have_find_no_contact_and_raise_nothing(ctx, lock):
    ann = create_contact(ctx, {"email": "ann@corp.example"})
    hostile = [0, -1, 2**31, 2**63, True, "1", None, 1.5, ann.id, ann.id]
    with ctx.db.transaction() as session:
        found = read_contacts(session, row_ids(hostile), lock=lock)
    assert list(found) == [ann.id]
    assert isinstance(found[ann.id], ContactView)
    assert found[ann.id].email == "ann@corp.example"


def test_the_block_list_matches_an_address_or_its_whole_domain(ctx):
    ann = create_contact(ctx, {"email": "Ann@Corp.example"})
    bob = create_contact(ctx, {"email": "bob@blocked.example"})
    cid = create_contact(ctx, {"email": "cid@fine.example"})
    dan = create_contact(ctx, {"email": "dan@sub.blocked.example"})  # another domain
    eve = create_contact(ctx, {"email": "eve@corp.example"})  # the address, not its domain
    with ctx.db.transaction() as session:
        for pattern in ("ann@corp.example", "@blocked.example", "@sub"):
            session.add(BlockedAddress(pattern=pattern, created_at=ctx.clock.now()))
    with ctx.db.read() as session:
        patterns = blocked_patterns(session, [ann.id, bob.id, cid.id, dan.id, eve.id])
        assert blocked_patterns(session, [cid.id, dan.id, eve.id]) == set()
        assert blocked_patterns(session, [bob.id]) == {"@blocked.example"}
        found = read_contacts(session, [ann.id, bob.id, cid.id], lock=False)
    assert patterns == {"ann@corp.example", "@blocked.example"}
    assert [is_blocked(found[c.id], patterns) for c in (ann, bob, cid)] == [True, True, False]


@pytest.mark.parametrize(
    ("stored", "domain"),
    [
        ("ann@corp.example", "@corp.example"),
        ('"a@b"@corp.example', "@corp.example"),  # after the last @, as `_keys` says
        ("no-at-sign", "@no-at-sign"),
        ("ann@", "@"),
    ],
)
def test_an_address_is_blocked_by_its_domain_after_its_last_at_sign(ctx, stored, domain):
    """Stored addresses were not always checked (imports before the check): the SQL
    finds the domain exactly as the Python that matches the entries does."""
    ann = create_contact(ctx, {"email": "ann@corp.example"})
    with ctx.db.transaction() as session:
        session.get_one(Contact, ann.id).email_key = stored
        session.add(BlockedAddress(pattern=domain, created_at=ctx.clock.now()))
        session.add(BlockedAddress(pattern="@example", created_at=ctx.clock.now()))
    with ctx.db.read() as session:
        assert blocked_patterns(session, [ann.id]) == {domain}


COUNT_CONTACTS = Prepared(select(func.count()).select_from(Contact))


def test_reads_run_together_give_what_each_gives_alone(ctx):
    ann = create_contact(ctx, {"email": "ann@corp.example", "firstname": "Ann"})
    bob = create_contact(ctx, {"email": "bob@corp.example"})
    ids = [ann.id, bob.id]
    with ctx.db.read() as session:
        connection = session.connection()
        reads = [
            (COUNT_CONTACTS, {}),
            contacts_read(connection, ids, lock=False),
            (CONTACT, {"contact_id": bob.id}),
            (CONTACT, {"contact_id": bob.id + 1000}),
        ]
        together = rows_together(connection, reads)
        alone = [prepared.rows(connection, params) for prepared, params in reads]
    assert together == alone
    assert together[0] == [(2,)]
    assert list(contacts_from(together[1])) == ids
    assert together[3] == []


def test_reads_run_together_take_one_round_trip_on_postgresql(pg_ctx):
    ctx = pg_ctx
    ann = create_contact(ctx, {"email": "ann@corp.example"})
    with ctx.db.transaction() as session:
        connection = session.connection()
        connection.exec_driver_sql("SELECT 1")  # the transaction has begun
        driver = connection.connection.driver_connection
        reads = [
            (COUNT_CONTACTS, {}),
            contacts_read(connection, [ann.id], lock=True),
            (CONTACT, {"contact_id": ann.id}),
        ]
        with traced(driver) as together:
            rows_together(connection, reads)
        with traced(driver) as alone:
            [prepared.rows(connection, params) for prepared, params in reads]
    assert together.round_trips == 1, together.lines
    assert alone.round_trips == 3


def test_a_read_sends_no_begin_or_commit_on_postgresql(pg_ctx):
    """A read session on PostgreSQL is in autocommit (`Database.read`): at READ
    COMMITTED each statement has its own snapshot either way."""
    ctx = pg_ctx
    ann = create_contact(ctx, {"email": "ann@corp.example"})
    with ctx.db.read() as session:
        driver = session.connection().connection.driver_connection
        with traced(driver) as trace:
            assert session.get_one(Contact, ann.id).email == "ann@corp.example"
            assert CONTACT.rows(session.connection(), {"contact_id": ann.id})
        assert driver.autocommit
    assert trace.round_trips == 2, trace.lines
    assert trace.sent("BEGIN") == 0
    # the connection goes back to the pool as it came: a transaction is one again
    with ctx.db.transaction() as session:
        driver = session.connection().connection.driver_connection
        assert not driver.autocommit
        with traced(driver) as trace:
            session.get_one(Contact, ann.id)
    assert trace.sent("BEGIN") == 1


def test_an_enroll_preview_of_many_contacts_takes_two_round_trips_on_postgresql(pg_ctx):
    """The user, the sequence with its steps and the mailbox in one statement, then
    the contacts' four reads together: no BEGIN or COMMIT (a preview reads), and
    nothing more for 50 contacts than for one (bench/api.py's busiest request)."""
    world = World(pg_ctx)
    ids = [world.contact(f"c{i}@corp.example").id for i in range(50)]
    previews = {}
    for count in (1, 50):
        request = EnrollRequest(
            world.sequence.id, world.user.id, [ContactRequest(i) for i in ids[:count]],
            dry_run=True,
        )  # fmt: skip
        with traced_engine(pg_ctx.db.engine) as trace:
            previews[count] = enroll(pg_ctx, request)
        assert trace.round_trips == 2, trace.lines
        assert trace.sent("BEGIN") == trace.sent("COMMIT") == 0
    assert all(result.ok for result in previews[50])


def test_a_read_session_refuses_to_write_and_nothing_is_written(ctx):
    """On PostgreSQL a read session runs in autocommit, where each statement of a flush
    would be kept on its own: it writes nothing at all, on both databases."""
    ann = create_contact(ctx, {"email": "ann@corp.example", "firstname": "Ann"})
    with pytest.raises(RuntimeError, match=r"Database\.transaction"), ctx.db.read() as session:
        session.get_one(Contact, ann.id).firstname = "Changed"
        session.add(BlockedAddress(pattern="@corp.example", created_at=ctx.clock.now()))
        session.flush()
    with ctx.db.read() as session:
        assert session.get_one(Contact, ann.id).firstname == "Ann"
        assert session.scalars(select(BlockedAddress)).all() == []
