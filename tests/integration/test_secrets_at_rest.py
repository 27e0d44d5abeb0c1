"""Secrets at rest: sealed under a key that is not in the database, rotatable, and a copy
of the database alone can neither read them nor sign a link, a session or a webhook."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from typer.testing import CliRunner

from cadenza.config import Settings
from cadenza.domain import link_tokens
from cadenza.domain import webhooks as webhook_rules
from cadenza.domain.errors import CadenzaError
from cadenza.domain.sealing import Keyring, SealError, key_id, new_key
from cadenza.services.accounts import keys, mailboxes
from cadenza.services.accounts.link_secret import link_secret
from cadenza.services.context import Context
from cadenza.services.events_out import webhooks
from cadenza.store.db import Database
from cadenza.store.models import AppSecret, Mailbox, Webhook
from cadenza.web.ui import session_secret
from cadenza.web.ui.session import Session, SessionCodec

SMTP_PW = "smtp-Pa55-word-unique-7731"
IMAP_PW = "imap-Pa55-word-unique-9902"
HOOK_URL = "https://hooks.example.com/x"
HOOK_EVENTS = [webhook_rules.EVENT_TYPES[0]]


def _mailbox(ctx, world, **extra):
    return mailboxes.create_mailbox(
        ctx, world.user.id, "sealed@example.com", transport="smtp", smtp_host="smtp.example.com",
        smtp_port=587, smtp_username="rep", smtp_password=SMTP_PW, imap_host="imap.example.com",
        imap_username="rep", imap_password=IMAP_PW, **extra,
    )  # fmt: skip


def _raw_rows(ctx, table: str) -> str:
    with ctx.db.engine.connect() as connection:
        return repr(connection.execute(text(f"SELECT * FROM {table}")).all())


def test_mailbox_passwords_are_sealed_in_the_database_and_open_for_the_transport(ctx, world):
    mailbox = _mailbox(ctx, world)
    raw = _raw_rows(ctx, "mailboxes")
    assert SMTP_PW not in raw and IMAP_PW not in raw and "sealed:v1:" in raw
    stored = mailboxes.get_mailbox(ctx, mailbox.id)
    assert mailboxes.smtp_password(ctx, stored) == SMTP_PW
    assert mailboxes.imap_password(ctx, stored) == IMAP_PW


def test_the_sqlite_file_never_holds_the_password_bytes(tmp_path, clock, settings):
    from cadenza.store import migrate
    from tests.conftest import World

    path = tmp_path / "whole.db"
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db)
    own = Context(db=db, clock=clock, settings=settings.model_copy(update={"key_file": None}))
    other = World(own)
    mailboxes.update_mailbox(own, other.mailbox.id, {"smtp_password": SMTP_PW})
    db.dispose()  # folds the WAL into the file
    data = path.read_bytes()
    assert SMTP_PW.encode() not in data and b"sealed:v1:" in data
    key_file = tmp_path / "whole.db.key"  # the embedded default: beside the database
    assert key_file.exists() and stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_webhook_secret_is_sealed_and_deliveries_are_signed_with_the_clear_one(ctx, world):
    hook, secret = webhooks.create_webhook(ctx, None, "https://hooks.example.com/x", HOOK_EVENTS)
    assert secret not in _raw_rows(ctx, "webhooks")
    webhooks.send_test(ctx, hook.id)
    (due,) = webhooks.claim_due(ctx)
    assert due.secret == secret


def test_a_password_is_cleared_when_the_server_or_account_changes(ctx, world):
    mailbox = _mailbox(ctx, world)
    same = {"smtp_host": "smtp.example.com", "smtp_port": 587, "from_name": "Riley R."}
    mailboxes.update_mailbox(ctx, mailbox.id, same)
    assert mailboxes.smtp_password(ctx, mailboxes.get_mailbox(ctx, mailbox.id)) == SMTP_PW
    mailboxes.update_mailbox(ctx, mailbox.id, {"smtp_host": "elsewhere.example.net"})
    moved = mailboxes.get_mailbox(ctx, mailbox.id)
    assert moved.smtp_password is None
    assert mailboxes.imap_password(ctx, moved) == IMAP_PW  # the IMAP account did not move
    mailboxes.update_mailbox(ctx, mailbox.id, {"imap_username": "someone-else"})
    assert mailboxes.get_mailbox(ctx, mailbox.id).imap_password is None
    # a new password given with the move is kept
    mailboxes.update_mailbox(ctx, mailbox.id, {"smtp_port": 465, "smtp_password": "new-pw"})
    assert mailboxes.smtp_password(ctx, mailboxes.get_mailbox(ctx, mailbox.id)) == "new-pw"


def test_a_password_over_an_unencrypted_connection_goes_only_to_an_allowed_host(ctx, world):
    with pytest.raises(CadenzaError) as refused:
        mailboxes.create_mailbox(
            ctx, world.user.id, "plain@example.com", transport="smtp", smtp_host="mx.example.com",
            smtp_security="none", smtp_username="rep", smtp_password="pw",
        )  # fmt: skip
    assert refused.value.code == "validation_error" and "encryption" in refused.value.message
    local = mailboxes.create_mailbox(
        ctx, world.user.id, "relay@example.com", transport="smtp", smtp_host="127.0.0.1",
        smtp_security="none", smtp_username="rep", smtp_password="pw",
    )  # fmt: skip
    with pytest.raises(CadenzaError):  # moving it to a remote host without tls: refused
        mailboxes.update_mailbox(
            ctx, local.id, {"smtp_host": "mx.example.com", "smtp_password": "pw"}
        )
    with pytest.raises(CadenzaError):
        imap = {"imap_host": "imap.example.com", "imap_security": "none", "imap_password": "x"}
        mailboxes.update_mailbox(ctx, local.id, imap)
    assert mailboxes.get_mailbox(ctx, local.id).smtp_host == "127.0.0.1"  # nothing half-done


def test_a_value_moved_to_another_column_or_altered_does_not_open(ctx, world):
    mailbox = _mailbox(ctx, world)
    with ctx.db.transaction() as session:
        row = session.get(Mailbox, mailbox.id)
        row.imap_password = row.smtp_password  # same key, wrong column
    with pytest.raises(CadenzaError):
        mailboxes.imap_password(ctx, mailboxes.get_mailbox(ctx, mailbox.id))
    ring = keys.keyring(ctx)
    sealed = ring.seal("x", "mailboxes.smtp_password")
    with pytest.raises(SealError):
        ring.open(sealed[:-2] + ("AA" if sealed[-2:] != "AA" else "BB"), "mailboxes.smtp_password")


def test_clear_values_from_before_sealing_are_sealed_at_start(ctx, world):
    mailbox = _mailbox(ctx, world)
    with ctx.db.transaction() as session:  # as an older version stored it
        session.execute(update(Mailbox).where(Mailbox.id == mailbox.id).values(
            smtp_password="legacy-clear-pw", imap_password=None))  # fmt: skip
    stored = mailboxes.get_mailbox(ctx, mailbox.id)
    assert mailboxes.smtp_password(ctx, stored) == "legacy-clear-pw"  # readable meanwhile
    report = keys.seal_everything(ctx)
    assert report.sealed == 1
    assert "legacy-clear-pw" not in _raw_rows(ctx, "mailboxes")
    assert mailboxes.smtp_password(ctx, mailboxes.get_mailbox(ctx, mailbox.id)) == (
        "legacy-clear-pw"
    )
    assert keys.seal_everything(ctx).sealed == 0  # safe to run at every start


def _kids(ctx) -> set[str]:
    found = set()
    with ctx.db.read() as session:
        for model, column in keys.SEALED_COLUMNS:
            for value in session.scalars(select(getattr(model, column))):
                if value:
                    found.add(value.split(":")[2])
    return found


def test_rotating_the_key_file_reseals_everything_and_drops_the_old_key(ctx, world):
    _mailbox(ctx, world)
    webhooks.create_webhook(ctx, None, HOOK_URL, HOOK_EVENTS)
    link_key = link_secret(ctx)
    old = keys.keyring(ctx)
    assert _kids(ctx) == {old.current_id}
    report = keys.rotate(ctx)
    new = keys.keyring(ctx)
    assert new.current_id != old.current_id and new.ids == (new.current_id,)
    assert report.resealed == 4 and report.key_id == new.current_id  # 2 passwords, hook, link
    assert _kids(ctx) == {new.current_id}
    assert stat.S_IMODE(os.stat(ctx.settings.key_file).st_mode) == 0o600
    mailbox = mailboxes.list_mailboxes(ctx)[-1]
    assert mailboxes.smtp_password(ctx, mailbox) == SMTP_PW
    other = Context(db=Database(ctx.db.url), clock=ctx.clock, settings=ctx.settings)
    try:
        assert link_secret(other) == link_key  # links already sent keep working
    finally:
        other.db.dispose()
    with pytest.raises(SealError):  # the old key alone no longer opens anything
        old.open(mailbox.smtp_password, "mailboxes.smtp_password")


def test_rotating_an_environment_key_reads_with_the_old_and_seals_with_the_new(ctx, world):
    first = ctx.settings.model_copy(update={"secret_key": _secret("a")})
    before = Context(db=ctx.db, clock=ctx.clock, settings=first)
    mailbox = _mailbox(before, world)
    rotated = first.model_copy(update={"secret_key": _secret("b"), "old_secret_keys": _secret("a")})
    during = Context(db=ctx.db, clock=ctx.clock, settings=rotated)
    assert mailboxes.smtp_password(during, mailboxes.get_mailbox(ctx, mailbox.id)) == SMTP_PW
    assert keys.rotate(during).resealed == 2
    after = Context(db=ctx.db, clock=ctx.clock, settings=first.model_copy(
        update={"secret_key": _secret("b")}))  # fmt: skip
    assert mailboxes.smtp_password(after, mailboxes.get_mailbox(ctx, mailbox.id)) == SMTP_PW
    with pytest.raises(CadenzaError):
        mailboxes.smtp_password(before, mailboxes.get_mailbox(ctx, mailbox.id))


def _secret(letter: str):
    from pydantic import SecretStr

    return SecretStr(letter * 40)


def test_a_copy_of_the_database_alone_signs_nothing(ctx, world):
    """An attacker with the database (not the key file) tries to use what it holds."""
    hook, secret = webhooks.create_webhook(ctx, None, "https://hooks.example.com/x", HOOK_EVENTS)
    real_key = link_secret(ctx)
    with ctx.db.read() as session:
        stored_link = session.scalar(select(AppSecret.value))
        stored_hook = session.scalar(select(Webhook.secret).where(Webhook.id == hook.id))
    assert real_key.decode() not in stored_link and secret not in stored_hook
    # the stored value used as a link key: the server refuses the link
    forged = link_tokens.sign(stored_link.encode(), link_tokens.Purpose.UNSUBSCRIBE, "t" * 16)
    with pytest.raises(Exception):  # noqa: B017 (whatever the refusal, it is one)
        link_tokens.verify(real_key, link_tokens.Purpose.UNSUBSCRIBE, forged)
    # a session cookie signed with what the database holds is not a session
    import hashlib
    import hmac

    guess = hmac.new(stored_link.encode(), b"cadenza ui session", hashlib.sha256).hexdigest()
    cookie = SessionCodec(guess).dump(Session({"uid": world.user.id, "epoch": 0}))
    assert SessionCodec(session_secret(ctx)).load(cookie).data == {}
    # a webhook body signed with the stored value does not verify with the real secret
    body, now = b'{"type":"x"}', 1_700_000_000
    header = webhook_rules.sign(stored_hook, now, body)
    assert not webhook_rules.verify(secret, header, body, now)
    # and the database opened with any other key (no key file) reveals nothing
    stranger = Context(db=ctx.db, clock=ctx.clock, settings=ctx.settings.model_copy(
        update={"key_file": ctx.settings.key_file + ".stranger"}))  # fmt: skip
    with pytest.raises(CadenzaError):
        link_secret(stranger) if keys.keyring(stranger) else None
        keys.open_sealed(stranger, stored_hook, Webhook, "secret")


def test_the_key_file_appears_whole_or_not_at_all(ctx, monkeypatch):
    """While its key is being made the file is not there yet, so another process never
    reads it empty; once there, it holds the key this process uses."""
    path = Path(ctx.settings.key_file)
    seen_while_making = []
    made = keys.new_key

    def making():
        seen_while_making.append(path.exists())
        return made()

    monkeypatch.setattr(keys, "new_key", making)
    ring = keys.keyring(ctx)
    assert seen_while_making == [False]
    assert path.stat().st_mode & 0o777 == 0o600
    assert keys._file_keyring(path).current_id == ring.current_id
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".new")] == []


def _first_key_of_a_process(ctx, ready, answers):
    ready.wait()
    try:
        answers.put(keys.keyring(ctx).current_id)
    except CadenzaError as exc:
        answers.put(f"refused: {exc.message}")


def test_workers_starting_together_agree_on_one_new_key(ctx):
    """Eight processes ask for the keys of an installation that has none yet, at once:
    each gets the same one, none finds the file damaged."""
    forked = multiprocessing.get_context("fork")
    ready, answers = forked.Barrier(8), forked.Queue()
    processes = [
        forked.Process(target=_first_key_of_a_process, args=(ctx, ready, answers)) for _ in range(8)
    ]
    for process in processes:
        process.start()
    found = [answers.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert len(set(found)) == 1 and not found[0].startswith("refused"), found
    assert keys.keyring(ctx).current_id == found[0]


def test_a_key_file_others_may_read_is_refused(ctx):
    keys.keyring(ctx)
    os.chmod(ctx.settings.key_file, 0o644)
    with pytest.raises(CadenzaError) as refused:
        keys.keyring(ctx)
    assert "chmod 600" in refused.value.message


def test_keyring_seals_with_the_first_key_and_opens_with_any():
    old, new = new_key(), new_key()
    sealed_old = Keyring((old,)).seal("v", "p")
    ring = Keyring((new, old))
    assert ring.open(sealed_old, "p") == "v"
    assert ring.seal("v", "p").split(":")[2] == key_id(new)
    with pytest.raises(ValueError):
        Keyring(())


def test_cli_rotate_reseals(database, tmp_path, monkeypatch, clock, settings):
    from cadenza.cli import app
    from tests.conftest import World

    key_file = tmp_path / "cli.key"
    monkeypatch.setenv("CADENZA_DATABASE_URL", database.url)
    monkeypatch.setenv("CADENZA_KEY_FILE", str(key_file))
    own = Context(db=database, clock=clock, settings=Settings(
        database_url=database.url, key_file=str(key_file), password_hash_cost=4))  # fmt: skip
    world = World(own)
    _mailbox(own, world)
    before = keys.keyring(own).current_id
    result = CliRunner().invoke(app, ["secrets", "rotate"])
    assert result.exit_code == 0, result.output
    assert "2 secret(s) re-sealed" in result.output
    assert keys.keyring(own).current_id != before


def test_a_stored_password_is_not_handed_out_for_an_unencrypted_remote_login(ctx, world):
    """A mailbox saved before the rule (or since the allow-list shrank) sends no password."""
    local = mailboxes.create_mailbox(
        ctx, world.user.id, "relay@example.com", transport="smtp", smtp_host="127.0.0.1",
        smtp_security="none", smtp_username="rep", smtp_password=SMTP_PW,
    )  # fmt: skip
    assert mailboxes.smtp_password(ctx, local) == SMTP_PW
    stricter = ctx.settings.model_copy(update={"plain_auth_hosts": "relay.internal"})
    strict = Context(db=ctx.db, clock=ctx.clock, settings=stricter)
    assert mailboxes.smtp_password(strict, mailboxes.get_mailbox(ctx, local.id)) is None
