"""Accounts from the command line: password change, deactivation, token revocation."""

from __future__ import annotations

import os

import pytest

from cadenza.config import Settings
from cadenza.services.accounts import users
from cadenza.services.context import Context


@pytest.fixture
def cli(cli, database, clock):
    """The shared runner (tests/integration/conftest.py), with a services context on the
    same database for what the tests set up and check around the commands."""
    cli.ctx = Context(
        db=database, clock=clock, settings=Settings(database_url=database.url, password_hash_cost=4)
    )
    return cli


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


def test_db_upgrade_seals_passwords_an_older_version_stored_in_clear(cli):
    from sqlalchemy import text, update

    from cadenza.services.accounts import mailboxes
    from cadenza.store.models import Mailbox

    ctx = cli.ctx
    owner = users.create_user(ctx, "rep@example.com")
    box = mailboxes.create_mailbox(ctx, owner.id, "rep@example.com", smtp_password="x")
    with ctx.db.transaction() as session:  # as before sealing existed
        session.execute(update(Mailbox).values(smtp_password="clear-Old-pw-5521"))
    assert "1 stored secret(s) sealed" in cli("db", "upgrade")
    with ctx.db.engine.connect() as connection:
        raw = repr(connection.execute(text("SELECT * FROM mailboxes")).all())
    assert "clear-Old-pw-5521" not in raw
    key_file = os.environ["CADENZA_KEY_FILE"]  # the key the CLI sealed with
    settings = Settings(database_url=ctx.db.url, key_file=key_file)
    cli_ctx = Context(db=ctx.db, clock=ctx.clock, settings=settings)
    stored = mailboxes.get_mailbox(cli_ctx, box.id)
    assert mailboxes.smtp_password(cli_ctx, stored) == "clear-Old-pw-5521"
