"""DKIM (issue 14 §5): a domain's key signs what its mailboxes send, and the signature
of the message a real SMTP server received verifies against the published record;
keys are sealed, admins only, and managed from the CLI. Both databases."""

from __future__ import annotations

from datetime import timedelta

import dkim
import pytest
from sqlalchemy import select

from cadenza.domain.errors import ErrorCode
from cadenza.services.accounts import dkim as dkim_keys
from cadenza.services.accounts.keys import rotate
from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.store.models import DkimKey, Mailbox
from tests.conftest import code_of, enroll_ids
from tests.support.smtp_sink import SmtpSink

ONE_STEP = [{"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"}]


def published(*keys):
    """A resolver answering the DNS TXT lookups of the records `cadenza dkim` printed."""
    records = {f"{k.record_name}.".encode(): k.record_value.encode() for k in keys}

    def lookup(name, timeout=5):
        return records.get(name)

    return lookup


@pytest.fixture
def sink():
    with SmtpSink() as server:
        yield server


def _send_from(world, sink, address):
    """One email from a new SMTP mailbox at `address`, through the engine, as received."""
    mailbox = create_mailbox(
        world.ctx, world.user.id, address, transport="smtp", smtp_host=sink.host,
        smtp_port=sink.port, smtp_security="none",
    )  # fmt: skip
    with world.ctx.db.transaction() as session:  # the user's only mailbox
        for other in session.scalars(select(Mailbox).where(Mailbox.id != mailbox.id)):
            session.delete(other)
    world.sequence = world.make_sequence(steps=ONE_STEP, name=f"From {address}")
    return mailbox


def test_mail_from_a_domain_with_a_key_arrives_signed_and_verifies(ctx, world, sink, worker):
    key = dkim_keys.generate_key(ctx, "Corp.Example")
    assert (key.domain, key.selector) == ("corp.example", "cadenza")
    assert key.record_name == "cadenza._domainkey.corp.example"
    assert key.record_value.startswith("v=DKIM1; k=rsa; p=")
    _send_from(world, sink, "rep@corp.example")
    enroll_ids(world, [world.contact()])
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    [received] = sink.messages
    raw = received.data
    assert raw.startswith(b"DKIM-Signature: ") and b"d=corp.example" in raw
    assert dkim.verify(raw, dnsfunc=published(key))
    # Anything signed changed on the way: the signature no longer holds.
    assert not dkim.verify(raw.replace(b"Subject: Hi", b"Subject: Yo"), dnsfunc=published(key))
    # Another key published under the name: not this signature.
    other = dkim_keys.generate_key(ctx, "corp.example", replace=True)
    assert not dkim.verify(raw, dnsfunc=published(other))


def test_mail_from_a_domain_without_a_key_is_not_signed(ctx, world, sink, worker):
    dkim_keys.generate_key(ctx, "corp.example")
    _send_from(world, sink, "rep@elsewhere.example")
    enroll_ids(world, [world.contact()])
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    [received] = sink.messages
    assert b"DKIM-Signature" not in received.data


def test_the_private_key_is_sealed_and_survives_a_key_rotation(ctx, world):
    dkim_keys.generate_key(ctx, "corp.example")
    with ctx.db.read() as session:
        stored = session.scalar(select(DkimKey)).private_key
    assert "PRIVATE KEY" not in stored
    rotate(ctx)
    with ctx.db.read() as session:
        assert session.scalar(select(DkimKey)).private_key != stored  # re-sealed
        [signer] = dkim_keys.signers(ctx, session).values()
    assert signer.private_pem.startswith("-----BEGIN RSA PRIVATE KEY-----")


def test_one_key_per_domain_unless_replaced_and_bad_names_refused(ctx, world):
    first = dkim_keys.generate_key(ctx, "corp.example")
    assert code_of(dkim_keys.generate_key, ctx, "corp.example") == ErrorCode.CONFLICT
    second = dkim_keys.generate_key(ctx, "corp.example", "s2026", replace=True)
    assert second.selector == "s2026" and second.public_key != first.public_key
    assert [k.domain for k in dkim_keys.list_keys(ctx)] == ["corp.example"]
    for domain in ("localhost", "bad_domain.example", "-x.example", "a" * 64 + ".example"):
        assert code_of(dkim_keys.generate_key, ctx, domain) == ErrorCode.VALIDATION_ERROR
    assert code_of(dkim_keys.generate_key, ctx, "x.example", "no.dots") == (
        ErrorCode.VALIDATION_ERROR
    )
    dkim_keys.delete_key(ctx, "corp.example")
    assert dkim_keys.list_keys(ctx) == []
    assert code_of(dkim_keys.delete_key, ctx, "corp.example") == ErrorCode.NOT_FOUND


def test_only_admins_manage_keys(ctx, world):
    from cadenza.services.accounts.users import create_user

    admin = create_user(ctx, "admin@example.com", role="admin")
    key = dkim_keys.generate_key(ctx, "corp.example", actor_id=admin.id)
    assert dkim_keys.list_keys(ctx, actor_id=admin.id) == [key]
    member = world.user.id
    assert code_of(dkim_keys.list_keys, ctx, actor_id=member) == ErrorCode.PERMISSION_DENIED
    denied = code_of(dkim_keys.generate_key, ctx, "x.example", actor_id=member)
    assert denied == ErrorCode.PERMISSION_DENIED
    denied = code_of(dkim_keys.delete_key, ctx, "corp.example", actor_id=member)
    assert denied == ErrorCode.PERMISSION_DENIED


def test_the_cli_prints_the_record_to_publish(cli, ctx, world):
    output = cli("dkim", "generate", "corp.example")
    [key] = dkim_keys.list_keys(ctx)
    assert "cadenza._domainkey.corp.example" in output and key.record_value in output
    assert key.record_value in cli("dkim", "show", "corp.example")
    assert "corp.example" in cli("dkim", "list")
    assert "already has a DKIM key" in cli("dkim", "generate", "corp.example", ok=False)
    assert "no DKIM key" in cli("dkim", "show", "other.example", ok=False)
    assert "unsigned" in cli("dkim", "delete", "corp.example")
    assert dkim_keys.list_keys(ctx) == []
