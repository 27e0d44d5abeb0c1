"""Schema migrations through Alembic, driven from code so no alembic.ini is needed."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from cadenza.store.db import Database

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(db: Database, revision: str = "head") -> None:
    config = _config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def revision(db: Database, message: str) -> None:
    """Autogenerates a new migration from the models (developer use: `make migration`)."""
    config = _config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)


def is_current(db: Database) -> bool:
    current, head = versions(db)
    return current == head


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest migration this code ships (read from the scripts once per process)."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "no migrations"
    return head


def versions(db: Database) -> tuple[str | None, str]:
    """(the database's schema revision, None when never migrated; the code's head)."""
    with db.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return current, head_revision()
