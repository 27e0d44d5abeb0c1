"""Fixtures the integration tests share: the command line, run in-process."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cadenza.cli import app
from cadenza.services import context as context_module
from cadenza.store.db import Database
from tests.conftest import _empty_postgres, widen_cli_consoles


@pytest.fixture
def cli(database, monkeypatch, tmp_path):
    """`cadenza ARGS...` in-process on the test's database: returns what it printed
    (stdout, then stderr) and asserts it succeeded, or with `ok=False` that it failed.

    Whatever the CLI would read from or write to its surroundings is this test's own:
    the key file (on PostgreSQL it would otherwise be ./cadenza.key, written into the
    checkout the tests run from), the config directory where `cadenza use` remembers
    its user; no CLI user or config file comes in from the developer's shell; and
    passwords are hashed at the fixtures' cheap cost, as the `settings` fixture does."""
    monkeypatch.setenv("CADENZA_DATABASE_URL", database.url)
    monkeypatch.setenv("CADENZA_KEY_FILE", str(tmp_path / "cli.key"))
    monkeypatch.setenv("CADENZA_PASSWORD_HASH_COST", "4")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("CADENZA_CLI_USER", raising=False)
    monkeypatch.delenv("CADENZA_CONFIG", raising=False)
    widen_cli_consoles(monkeypatch)
    runner = CliRunner()
    # Each command opens the database as a process would, and a process's pool closes
    # when it exits: close it after each command here, so no idle connection is left on
    # PostgreSQL for what counts the database's other sessions (cadenza restore).
    opened: list[Database] = []

    def tracked(url: str, *args, **kwargs) -> Database:
        opened.append(Database(url, *args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(context_module, "Database", tracked)

    def run(*args, ok=True, env=None):
        try:
            result = runner.invoke(app, [str(a) for a in args], env=env)
        finally:
            while opened:
                opened.pop().dispose()
        output = result.output + (result.stderr if result.stderr_bytes else "")
        assert (result.exit_code == 0) is ok, output
        return output

    return run


@pytest.fixture
def pg_ctx(pg_database_url, clock, settings):
    """A context on PostgreSQL only, for tests of its row locks (no SQLite variant: the
    test's id carries no backend, so mutation runs that leave PostgreSQL out keep it)."""
    from cadenza.services.context import Context

    db = Database(pg_database_url)
    _empty_postgres(db)
    yield Context(db=db, clock=clock, settings=settings)
    db.dispose()
