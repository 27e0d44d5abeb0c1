"""StrEnumType (store/types.py) on both databases: members go in and come back as
members, and a value outside the vocabulary never passes the boundary unnoticed."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text, update
from sqlalchemy.exc import StatementError

from cadenza.domain.enums import EnrollmentState, EventKind, StepRunStatus
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.store.models import Base, EmailEvent, Enrollment, StepRun
from cadenza.store.types import StrEnumType

TYPED_COLUMNS = sorted(
    (f"{table.name}.{column.name}", column.type)
    for table in Base.metadata.sorted_tables
    for column in table.columns
    if isinstance(column.type, StrEnumType)
)


@pytest.fixture
def probe_table(database):
    """A table of its own per test, dropped after: the typed column alone, no parents."""
    tables = []

    def make(column_type: StrEnumType) -> Table:
        table = Table(
            f"enum_probe_{uuid.uuid4().hex[:8]}",
            MetaData(),
            Column("id", Integer, primary_key=True),
            Column("value", column_type, nullable=True),
        )
        table.create(database.engine)
        tables.append(table)
        return table

    yield make
    for table in tables:
        table.drop(database.engine)


@pytest.mark.parametrize(("name", "column_type"), TYPED_COLUMNS, ids=[n for n, _ in TYPED_COLUMNS])
def test_every_member_round_trips_as_a_member_and_the_raw_value_is_its_string(
    database, probe_table, name, column_type
):
    table = probe_table(column_type)
    members = list(column_type.enum)
    with database.engine.begin() as connection:
        connection.execute(insert(table), [{"value": m} for m in members] + [{"value": None}])
        back = connection.execute(select(table.c.value).order_by(table.c.id)).scalars().all()
        raw = connection.execute(text(f"SELECT value FROM {table.name} ORDER BY id")).scalars()
        raw = raw.all()
    assert back[:-1] == members and all(type(v) is column_type.enum for v in back[:-1])
    assert back[-1] is None
    assert raw[:-1] == [m.value for m in members] and all(type(v) is str for v in raw[:-1])


@pytest.mark.parametrize(("name", "column_type"), TYPED_COLUMNS, ids=[n for n, _ in TYPED_COLUMNS])
def test_a_plain_string_of_the_vocabulary_is_accepted_and_comes_back_a_member(
    database, probe_table, name, column_type
):
    table = probe_table(column_type)
    first = next(iter(column_type.enum))
    with database.engine.begin() as connection:
        connection.execute(insert(table).values(value=str(first.value)))
        found = connection.execute(
            select(table.c.value).where(table.c.value == first.value)
        ).scalar_one()
    assert found is first


@pytest.mark.parametrize(("name", "column_type"), TYPED_COLUMNS, ids=[n for n, _ in TYPED_COLUMNS])
def test_an_unknown_value_is_refused_before_it_is_stored(database, probe_table, name, column_type):
    table = probe_table(column_type)
    with (
        pytest.raises(StatementError, match=column_type.enum.__name__),
        database.engine.begin() as c,
    ):
        c.execute(insert(table).values(value="no_such_value"))
    with database.engine.begin() as connection:
        assert connection.execute(text(f"SELECT count(*) FROM {table.name}")).scalar() == 0


@pytest.mark.parametrize(("name", "column_type"), TYPED_COLUMNS, ids=[n for n, _ in TYPED_COLUMNS])
def test_an_unknown_stored_value_is_a_clear_error_when_read(
    database, probe_table, name, column_type
):
    """A row written behind the code's back (by hand, or by a newer version) names the
    vocabulary and its values instead of flowing on as a string nothing matches."""
    table = probe_table(column_type)
    with database.engine.begin() as connection:
        connection.execute(text(f"INSERT INTO {table.name} (id, value) VALUES (1, 'zombie')"))
    unknown = pytest.raises(ValueError, match=r"'zombie' is not a \w+ \(one of: ")
    with unknown as error, database.engine.begin() as connection:
        connection.execute(select(table.c.value)).scalars().all()
    assert column_type.enum.__name__ in str(error.value)


# --- the real tables, through the services ------------------------------------------------


def _enroll(ctx, world):
    contact = world.contact()
    [result] = enroll(
        ctx,
        EnrollRequest(
            sequence_id=world.sequence.id,
            user_id=world.user.id,
            contacts=[ContactRequest(contact.id)],
        ),
    )
    assert result.ok, result
    return result.enrollment_id


def test_rows_come_back_with_members(ctx, world):
    enrollment_id = _enroll(ctx, world)
    with ctx.db.read() as session:
        row = session.get(Enrollment, enrollment_id)
        [run] = row.step_runs
        assert row.state is EnrollmentState.ACTIVE and row.reason is None
        assert run.status is StepRunStatus.PENDING
        # Bare strings still find them: a member is equal to its value in SQL as in Python.
        assert (
            session.scalar(
                select(StepRun.id).where(
                    StepRun.enrollment_id == enrollment_id, StepRun.status == "pending"
                )
            )
            == run.id
        )


def test_a_row_with_a_state_outside_the_vocabulary_is_reported_not_read_as_a_string(ctx, world):
    enrollment_id = _enroll(ctx, world)
    with ctx.db.transaction() as session:
        session.execute(
            text("UPDATE enrollments SET state = 'frozen' WHERE id = :id"), {"id": enrollment_id}
        )
    unknown = pytest.raises(ValueError, match=r"'frozen' is not a EnrollmentState")
    with unknown, ctx.db.read() as session:
        session.get(Enrollment, enrollment_id)


def test_an_event_of_an_unknown_kind_is_refused_and_nothing_is_written(ctx):
    now = ctx.clock.now()
    refused = pytest.raises(StatementError, match="EventKind")
    with refused, ctx.db.transaction() as session:
        session.add(EmailEvent(kind="replied", data={}, occurred_at=now))
    with ctx.db.transaction() as session:
        session.add(EmailEvent(kind=EventKind.REPLY, data={}, occurred_at=now))
    with ctx.db.read() as session:
        assert session.scalars(select(EmailEvent.kind)).all() == [EventKind.REPLY]


def test_a_bulk_update_binds_members_through_the_column_type(ctx, world):
    enrollment_id = _enroll(ctx, world)
    with ctx.db.transaction() as session:
        session.execute(
            update(StepRun)
            .where(StepRun.enrollment_id == enrollment_id)
            .values(status=StepRunStatus.PAUSED)
        )
    with ctx.db.read() as session:
        raw = session.execute(
            text("SELECT status FROM step_runs WHERE enrollment_id = :id"), {"id": enrollment_id}
        ).scalar_one()
    assert raw == "paused" and type(raw) is str
