"""`cadenza doctor` (issue 14 §6) against real parts: an SMTP server that wants a login,
dovecot for IMAP, a DNS server on loopback holding DKIM records, a key file on disk, and
a database one migration behind. Every check is read back from its finding; the exit
code says whether something must be fixed."""

from __future__ import annotations

import base64
import os

import pytest

from cadenza.cli.doctor import Verdict, dns_lookup, run_checks
from cadenza.config import Settings
from cadenza.services.accounts import dkim
from cadenza.services.accounts.mailboxes import create_mailbox, update_mailbox
from cadenza.services.context import Context
from cadenza.store import migrate
from cadenza.store.db import Database
from tests.support.dns_server import TxtServer
from tests.support.dovecot import Dovecot
from tests.support.smtp_sink import SmtpSink


@pytest.fixture(scope="module")
def dovecot():
    with Dovecot(user="rep@corp.example", password="imap-pw-7") as server:
        yield server


@pytest.fixture
def sink():
    with SmtpSink(auth={"rep": "smtp-pw-7"}) as server:
        yield server


def _doctor_ctx(ctx, **overrides) -> Context:
    """The installation as the doctor sees it: this database and key file, and these
    settings as if set in the environment."""
    settings = Settings(
        database_url=ctx.db.url, key_file=ctx.settings.key_file, password_hash_cost=4,
        **overrides,
    )  # fmt: skip
    return Context(db=ctx.db, clock=ctx.clock, settings=settings)


def _verdicts(findings, check):
    return [(f.subject, f.verdict) for f in findings if f.check == check]


@pytest.fixture
def healthy(ctx, world, sink, dovecot):
    """A mailbox that sends over SMTP with a password and reads its inbox, a DKIM key."""
    box = create_mailbox(
        ctx, world.user.id, "rep@corp.example", transport="smtp", smtp_host=sink.host,
        smtp_port=sink.port, smtp_security="none", smtp_username="rep",
        smtp_password="smtp-pw-7", imap_host=dovecot.host, imap_port=dovecot.port,
        imap_security="none", imap_username="rep@corp.example", imap_password="imap-pw-7",
    )  # fmt: skip
    key = dkim.generate_key(ctx, "corp.example")
    return box, key


def test_a_healthy_installation_passes_every_check(ctx, healthy):
    box, key = healthy
    doctor = _doctor_ctx(ctx, public_url="https://cadenza.corp.example")
    with TxtServer({key.record_name: key.record_value}) as dns:
        findings = run_checks(doctor, dns_lookup(dns.address))
    by_check = {f.check: f for f in findings if f.subject.startswith(f"mailbox {box.id}")}
    assert by_check["SMTP"].verdict is Verdict.OK and "235" not in by_check["SMTP"].detail
    assert by_check["IMAP"].verdict is Verdict.OK
    assert _verdicts(findings, "DKIM") == [("corp.example", Verdict.OK)]
    assert _verdicts(findings, "public URL") == [("https://cadenza.corp.example", Verdict.OK)]
    assert [f.verdict for f in findings if f.check == "secret key"] == [Verdict.OK]
    assert _verdicts(findings, "database") == [("schema", Verdict.OK)]
    # The world's capture mailbox sends nothing real: fine, and nothing warns about it.
    assert {f.verdict for f in findings} == {Verdict.OK}


def test_each_fault_is_found_and_says_what_to_do(ctx, healthy, dovecot):
    box, key = healthy
    update_mailbox(ctx, box.id, {"smtp_port": 1, "smtp_username": "rep"})  # nothing listens
    update_mailbox(ctx, box.id, {"imap_password": "wrong"})
    other = dkim.generate_key(ctx, "corp.example", replace=True)  # the record is the old key
    doctor = _doctor_ctx(ctx, public_url="http://127.0.0.1:8000")
    with TxtServer({key.record_name: key.record_value}) as dns:
        findings = run_checks(doctor, dns_lookup(dns.address))
    failed = {(f.check, f.subject.split()[0]) for f in findings if f.verdict is Verdict.FAIL}
    assert failed == {
        ("public URL", "http://127.0.0.1:8000"),
        ("SMTP", "mailbox"),
        ("IMAP", "mailbox"),
        ("DKIM", "corp.example"),
    }
    fixes = {f.check: f.fix for f in findings if f.verdict is Verdict.FAIL}
    assert other.record_value in fixes["DKIM"] and "password" in fixes["IMAP"]


def test_a_key_file_others_can_read_is_the_fault_that_stops_the_rest(ctx, healthy):
    os.chmod(ctx.settings.key_file, 0o644)
    findings = run_checks(_doctor_ctx(ctx, public_url="https://c.corp.example"), dns_lookup(None))
    [key] = [f for f in findings if f.check == "secret key"]
    assert (key.verdict, key.fix) == (Verdict.FAIL, f"chmod 600 {ctx.settings.key_file}")
    # The mailboxes' passwords cannot be opened with such a file: said, not a crash.
    [mailboxes] = [f for f in findings if f.check == "mailboxes"]
    assert mailboxes.verdict is Verdict.FAIL and "chmod 600" in mailboxes.detail


def test_an_unreadable_dns_is_not_a_failure_and_an_unset_public_url_warns(ctx, world):
    dkim.generate_key(ctx, "corp.example")
    with TxtServer() as dns:
        silent = dns.address  # a server that answers NXDOMAIN
        findings = run_checks(_doctor_ctx(ctx), dns_lookup(silent))
    assert _verdicts(findings, "DKIM") == [("corp.example", Verdict.SKIPPED)]
    [url] = [f for f in findings if f.check == "public URL"]
    assert url.verdict is Verdict.WARN and "CADENZA_PUBLIC_URL" in url.fix


def test_secrets_the_key_cannot_open_are_counted(ctx, healthy, tmp_path):
    other_key = tmp_path / "other.key"
    doctor = _doctor_ctx(ctx, public_url="https://cadenza.corp.example")
    doctor = Context(
        db=ctx.db, clock=ctx.clock, settings=doctor.settings.model_copy(
            update={"key_file": str(other_key)}
        ),
    )  # fmt: skip
    from pathlib import Path

    from cadenza.domain.sealing import new_key

    assert Path(ctx.settings.key_file).exists()  # the values were sealed with that one
    other_key.write_text(base64.urlsafe_b64encode(new_key()).decode() + "\n")
    other_key.chmod(0o600)
    [finding] = [f for f in run_checks(doctor, dns_lookup(None)) if f.check == "secret key"]
    assert finding.verdict is Verdict.FAIL
    assert "mailboxes.smtp_password (1)" in finding.detail
    assert "dkim_keys.private_key (1)" in finding.detail


def test_pending_migrations_fail_the_database_check(tmp_path):
    behind = Database(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(behind, "0011")
    doctor = Context(db=behind, clock=None, settings=Settings(database_url=behind.url))
    findings = run_checks(doctor, dns_lookup(None))
    assert [(f.verdict, f.fix) for f in findings if f.check == "database"] == [
        (Verdict.FAIL, "stop the workers, then run `cadenza db upgrade`")
    ]
    # What reads the tables waits for them: not checked, rather than a crash.
    assert {f.check: f.verdict for f in findings if f.subject == "-"} == {
        "secret key": Verdict.SKIPPED,
        "mailboxes": Verdict.SKIPPED,
        "DKIM": Verdict.SKIPPED,
    }
    behind.dispose()


def test_the_command_exits_1_when_something_must_be_fixed(cli, monkeypatch):
    monkeypatch.setenv("CADENZA_PUBLIC_URL", "http://127.0.0.1:8000")
    output = cli("doctor", ok=False)
    assert "links in emails lead to this machine" in output and "problem(s) to fix" in output
    monkeypatch.setenv("CADENZA_PUBLIC_URL", "https://cadenza.corp.example")
    assert "No problem found." in cli("doctor")
