"""Accounts from the command line: password change, deactivation, token revocation."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cadenza.cli import app
from cadenza.config import Settings
from cadenza.services import users
from cadenza.services.context import Context


@pytest.fixture
def cli(database, tmp_path, monkeypatch, clock):
    monkeypatch.setenv("CADENZA_DATABASE_URL", database.url)
    monkeypatch.setenv("CADENZA_KEY_FILE", str(tmp_path / "cli.key"))
    monkeypatch.setenv("CADENZA_PASSWORD_HASH_COST", "4")
    runner = CliRunner()

    def run(*args, ok=True, env=None):
        result = runner.invoke(app, [str(a) for a in args], env=env)
        output = result.output + (result.stderr if result.stderr_bytes else "")
        assert (result.exit_code == 0) is ok, output
        return output

    settings = Settings(database_url=database.url, password_hash_cost=4)
    run.ctx = Context(db=database, clock=clock, settings=settings)
    return run


def test_password_change_deactivation_and_token_revocation(cli):
    ctx = cli.ctx
    ann = users.create_user(ctx, "ann@example.com", password="first-password")
    users.create_user(ctx, "boss@example.com", password="boss-password", role="admin")
    epoch = ann.session_epoch
    cli("user", "password", "ann@example.com", env={"CADENZA_NEW_PASSWORD": "second-password"})
    assert users.authenticate(ctx, "ann@example.com", "first-password") is None
    changed = users.authenticate(ctx, "ann@example.com", "second-password")
    assert changed is not None and changed.session_epoch > epoch
    assert "validation_error" in cli(
        "user", "password", "ann@example.com", env={"CADENZA_NEW_PASSWORD": "short"}, ok=False
    )
    first = users.create_token(ctx, ann.id, "one").token
    second = users.create_token(ctx, ann.id, "two").token
    cli("user", "deactivate", "ann@example.com")
    assert users.user_for_token(ctx, first) is None
    assert users.authenticate(ctx, "ann@example.com", "second-password") is None
    cli("user", "activate", "ann@example.com")
    assert users.user_for_token(ctx, first) is not None
    assert "2 token(s) of ann@example.com revoked" in cli("token", "revoke", "--all", "--as",
                                                          "ann@example.com")  # fmt: skip
    assert users.user_for_token(ctx, second) is None
    assert "last active admin" in cli("user", "deactivate", "boss@example.com", ok=False)
