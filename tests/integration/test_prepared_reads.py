"""Reads compiled once and run on the driver's cursor (store/prepared.py), on both
databases: their values are what the ORM gives, SQLAlchemy's listeners hear them, and a
single read (`Database.single_read`) runs outside any transaction. Then the enroll
request's reads of its contacts (services/enrollment/candidates.py) on hostile ids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, event, select

from cadenza.services.crm.contacts import ContactView, create_contact
from cadenza.services.enrollment.candidates import blocked_patterns, candidates
from cadenza.store.models import BlockedAddress, Contact
from cadenza.store.prepared import Prepared

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


@pytest.mark.parametrize("lock", [False, True])
def test_ids_no_row_can_have_find_no_contact_and_raise_nothing(ctx, lock):
    ann = create_contact(ctx, {"email": "ann@corp.example"})
    hostile = [0, -1, 2**31, 2**63, True, "1", None, 1.5, ann.id, ann.id]
    with ctx.db.transaction() as session:
        found = candidates(session, hostile, lock=lock)
    assert list(found) == [ann.id]
    assert isinstance(found[ann.id], ContactView)
    assert found[ann.id].email == "ann@corp.example"


def test_the_block_list_matches_an_address_or_its_whole_domain(ctx):
    ann = create_contact(ctx, {"email": "Ann@Corp.example"})
    bob = create_contact(ctx, {"email": "bob@blocked.example"})
    cid = create_contact(ctx, {"email": "cid@fine.example"})
    with ctx.db.transaction() as session:
        for pattern in ("ann@corp.example", "@blocked.example"):
            session.add(BlockedAddress(pattern=pattern, created_at=ctx.clock.now()))
    with ctx.db.read() as session:
        found = candidates(session, [ann.id, bob.id, cid.id], lock=False)
        patterns = blocked_patterns(session, found.values())
        assert blocked_patterns(session, [found[cid.id]]) == set()
    assert patterns == {"ann@corp.example", "@blocked.example"}
