"""The migrations and the models describe the same schema, on both databases."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from cadenza.store import migrate
from cadenza.store.db import Database
from cadenza.store.models import Base


def test_migrations_match_models(database):
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_migrations_are_current_and_create_every_table(database):
    assert migrate.is_current(database)
    tables = set(inspect(database.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_due_index_is_partial_over_pending_runs(database):
    indexes = {ix["name"]: ix for ix in inspect(database.engine).get_indexes("step_runs")}
    due = indexes["ix_step_runs_due"]
    where = (due.get("dialect_options") or {}).get(f"{database.dialect}_where")
    assert due["column_names"] == ["due_at"]
    assert where is not None and "pending" in str(where)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    migrate.upgrade(db)
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_sqlite_commits_reach_the_disk_before_they_return(tmp_path):
    """The hand-over's `handing` mark must survive a power cut, not only the worker's
    crash (store/db.py): every connection, the hand-over's included, flushes the WAL at
    each commit. 2 is FULL; NORMAL (1) flushes only at checkpoints."""
    db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    migrate.upgrade(db)
    for engine in (db.engine, db.keyed_engine):
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2


def test_records_migration_keeps_enrollments_and_their_steps(tmp_path, clock, settings):
    """0005 adds enrollments.source_record_id without rebuilding the table: on SQLite a
    rebuild under foreign_keys=ON would delete every step run with the old table."""
    from alembic import command
    from sqlalchemy import func, select

    from cadenza.services.context import Context
    from cadenza.store.models import StepRun
    from tests.conftest import World, enroll_ids

    db = Database(f"sqlite:///{tmp_path / 'upgrade.db'}")
    migrate.upgrade(db)
    world = World(Context(db=db, clock=clock, settings=settings))
    enroll_ids(world, world.contacts(3))
    config = migrate._config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
    migrate.upgrade(db)
    with db.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(StepRun)) == 3
    db.dispose()


def test_search_trigram_index_comes_and_goes_with_its_migration(database):
    """0028 builds ix_contacts_search_trgm on PostgreSQL (pg_trgm is in the test server's
    contrib) and nothing on SQLite; its downgrade drops it, and upgrading again builds it."""
    from alembic import command

    def trigram_index() -> bool:
        indexes = {ix["name"] for ix in inspect(database.engine).get_indexes("contacts")}
        return "ix_contacts_search_trgm" in indexes

    postgresql = database.dialect == "postgresql"
    assert trigram_index() is postgresql
    config = migrate._config()
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0027")
    assert not trigram_index()
    migrate.upgrade(database)
    assert migrate.is_current(database) and trigram_index() is postgresql
