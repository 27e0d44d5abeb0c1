"""OAuth 2.0 mailboxes against real local parts: the authorization server on loopback
(tests/support/oauth_server.py, Authlib) and the SMTP sink accepting AUTH XOAUTH2 only
with a token that server says is live. Time is the FrozenClock: it decides when a token
is due for refresh."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from cadenza.domain.enums import MailboxAuth, StepRunStatus, StepWaitReason, WebhookEvent
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.accounts import mailboxes
from cadenza.services.accounts.mailboxes import get_mailbox, transport_settings
from cadenza.services.events_out import webhooks
from cadenza.services.oauth import connect as oauth
from cadenza.store.models import Mailbox, StepRun, WebhookDelivery
from tests.conftest import enroll_ids
from tests.support.oauth_server import google_preset_settings

REDIRECT = "http://127.0.0.1:8000/oauth/callback"
TWO_STEPS = [
    {"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"},
    {"type": "email", "delay_days": 3, "thread_with_step": 1, "body": "<p>Bump</p>"},
]


@pytest.fixture
def settings(settings, oauth_server, oauth_sink):
    return google_preset_settings(settings, oauth_server, oauth_sink, REDIRECT)


def connect(ctx, user_id: int, provider: str = "google"):
    """What the browser does: the provider consents and redirects back with code+state."""
    url = oauth.start_connect(ctx, provider, REDIRECT, actor_id=user_id)
    answer = httpx.get(url, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    return query


def finish(ctx, user_id: int, query: dict):
    return oauth.finish_connect(
        ctx, query.get("state", ""), query.get("code"), actor_id=user_id, error=query.get("error")
    )


def raw_mailbox(ctx, mailbox_id: int) -> Mailbox:
    with ctx.db.read() as session:
        row = session.get_one(Mailbox, mailbox_id)
        session.expunge(row)
        return row


def test_the_authorization_url_carries_pkce_s256_and_a_state_but_never_the_verifier(
    ctx, world, oauth_server
):
    url = oauth.start_connect(ctx, "google", REDIRECT, actor_id=world.user.id)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(oauth_server.url + "/authorize?")
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43 and len(query["state"][0]) >= 32
    assert query["access_type"] == ["offline"] and "code_verifier" not in query
    assert query["scope"] == ["openid email https://mail.google.com/"]


def test_connect_sends_over_xoauth2_with_sealed_tokens(ctx, world, worker, oauth_sink):
    mailbox = finish(ctx, world.user.id, connect(ctx, world.user.id))
    assert mailbox.id == world.mailbox.id  # the rep's mailbox for that address, now OAuth
    assert (mailbox.auth_method, mailbox.oauth_provider) == (MailboxAuth.OAUTH2, "google")
    assert mailbox.connected and mailbox.smtp_username == "rep@example.com"
    row = raw_mailbox(ctx, mailbox.id)
    assert row.oauth_access_token.startswith("sealed:v1:")
    assert row.oauth_refresh_token.startswith("sealed:v1:")
    assert row.oauth_expires_at == ctx.clock.now() + timedelta(hours=1)
    settings = transport_settings(ctx, mailbox.id)
    assert settings.xoauth2 and settings.oauth_token and settings.password is None
    assert settings.oauth_token not in repr(settings)

    sequence = world.make_sequence(steps=TWO_STEPS[:1])
    enroll_ids(world, [world.contact()], sequence=sequence, mailbox_id=mailbox.id)
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    [sent] = oauth_sink.messages
    assert sent.mail_from == "rep@example.com" and sent.rcpt_tos == ("ann@corp.example",)


def test_a_bad_token_is_refused_by_the_server_and_the_mailbox_waits(ctx, world, worker, oauth_sink):
    mailbox = finish(ctx, world.user.id, connect(ctx, world.user.id))
    with ctx.db.transaction() as session:  # a token the server never issued
        from cadenza.services.accounts.keys import seal

        row = session.get_one(Mailbox, mailbox.id)
        row.oauth_access_token = seal(ctx, "forged-token", Mailbox, "oauth_access_token")
    sequence = world.make_sequence(steps=TWO_STEPS[:1])
    enroll_ids(world, [world.contact()], sequence=sequence, mailbox_id=mailbox.id)
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    assert oauth_sink.messages == []
    after = get_mailbox(ctx, mailbox.id)
    assert not after.connected and "535" in after.disconnected_reason
    with ctx.db.read() as session:
        [run] = session.scalars(select(StepRun)).all()
        assert (run.status, run.wait_reason) == (
            StepRunStatus.PENDING,
            StepWaitReason.MAILBOX_DISCONNECTED,
        )


def test_the_token_is_refreshed_before_it_expires_and_sending_goes_on(
    ctx, world, worker, oauth_sink, oauth_server
):
    mailbox = finish(ctx, world.user.id, connect(ctx, world.user.id))
    first = raw_mailbox(ctx, mailbox.id)
    sequence = world.make_sequence(steps=TWO_STEPS)
    enroll_ids(world, [world.contact()], sequence=sequence, mailbox_id=mailbox.id)
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    assert len(oauth_sink.messages) == 1 and oauth_server.refreshes == 0
    worker.run_until(ctx.clock.now() + timedelta(days=4))  # the access token ran out
    assert len(oauth_sink.messages) == 2 and oauth_server.refreshes == 1
    second = raw_mailbox(ctx, mailbox.id)
    assert second.oauth_access_token != first.oauth_access_token
    assert second.oauth_refresh_token != first.oauth_refresh_token  # rotated
    assert second.oauth_expires_at - first.oauth_expires_at >= timedelta(days=3)  # renewed then


def test_revoked_consent_disconnects_steps_wait_an_event_goes_out_and_reconnecting_resumes(
    ctx, world, worker, oauth_sink, oauth_server
):
    webhook, _ = webhooks.create_webhook(
        ctx, None, "http://127.0.0.1:9/hooks", [WebhookEvent.MAILBOX_DISCONNECTED]
    )
    mailbox = finish(ctx, world.user.id, connect(ctx, world.user.id))
    sequence = world.make_sequence(steps=TWO_STEPS)
    [eid] = enroll_ids(world, [world.contact()], sequence=sequence, mailbox_id=mailbox.id)
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    assert len(oauth_sink.messages) == 1

    assert oauth_server.revoke_grants("rep@example.com") == 1  # the owner withdrew consent
    worker.run_until(ctx.clock.now() + timedelta(days=4))
    assert len(oauth_sink.messages) == 1
    after = get_mailbox(ctx, mailbox.id)
    assert not after.connected and "invalid_grant" in after.disconnected_reason
    with ctx.db.read() as session:
        runs = session.scalars(select(StepRun).where(StepRun.enrollment_id == eid)).all()
        waiting = [r for r in runs if r.status == StepRunStatus.PENDING]
        assert [r.wait_reason for r in waiting] == [StepWaitReason.MAILBOX_DISCONNECTED]
        assert not any(r.status == StepRunStatus.FAILED for r in runs)
        [delivery] = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id)
        ).all()
        assert delivery.event_type == "mailbox.disconnected"
        assert delivery.payload["data"]["mailbox_id"] == mailbox.id
        assert "invalid_grant" in delivery.payload["data"]["reason"]

    again = finish(ctx, world.user.id, connect(ctx, world.user.id))
    assert again.id == mailbox.id and again.connected
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    assert len(oauth_sink.messages) == 2


def test_a_state_is_good_once_for_its_own_user_before_it_expires(ctx, world):
    other = world._users.create_user(ctx, "other@example.com")
    query = connect(ctx, world.user.id)
    for user_id in (other.id,):
        with pytest.raises(CadenzaError) as refused:
            finish(ctx, user_id, query)
        assert refused.value.code is ErrorCode.VALIDATION_ERROR
    with pytest.raises(CadenzaError):  # spent by the refused try: no second use
        finish(ctx, world.user.id, query)

    late = connect(ctx, world.user.id)
    ctx.clock.advance(timedelta(seconds=ctx.settings.oauth_state_ttl_seconds + 1))
    with pytest.raises(CadenzaError) as expired:
        finish(ctx, world.user.id, late)
    assert "expired" in expired.value.message

    forged = dict(connect(ctx, world.user.id), state="x" * 40)
    with pytest.raises(CadenzaError):
        finish(ctx, world.user.id, forged)


def test_a_denied_consent_connects_nothing(ctx, world, oauth_server):
    oauth_server.deny_next = True
    query = connect(ctx, world.user.id)
    assert query["error"] == "access_denied"
    with pytest.raises(CadenzaError) as denied:
        finish(ctx, world.user.id, query)
    assert "access_denied" in denied.value.message
    assert get_mailbox(ctx, world.mailbox.id).auth_method == MailboxAuth.PASSWORD


def test_unknown_and_unconfigured_providers_are_refused_by_name(ctx, world):
    with pytest.raises(CadenzaError) as unknown:
        oauth.start_connect(ctx, "yahoo", REDIRECT, actor_id=world.user.id)
    assert unknown.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(CadenzaError) as unset:
        oauth.start_connect(ctx, "microsoft", REDIRECT, actor_id=world.user.id)
    assert unset.value.code is ErrorCode.INVALID_STATE
    assert "CADENZA_OAUTH_MICROSOFT_CLIENT_ID" in unset.value.message


def test_the_cli_prints_the_url_and_takes_the_pasted_redirect(ctx, world, oauth_server):
    """`cadenza mailboxes connect google` in a process of its own, as an admin runs it."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "CADENZA_DATABASE_URL": ctx.db.url,
        "CADENZA_KEY_FILE": ctx.settings.key_file,
        "CADENZA_CLI_USER": world.user.email,
        "CADENZA_PUBLIC_URL": REDIRECT.removesuffix("/oauth/callback"),
    }
    for name in ("client_id", "authorize_url", "token_url", "userinfo_url", "smtp_host"):
        env[f"CADENZA_OAUTH_GOOGLE_{name.upper()}"] = str(
            getattr(ctx.settings, f"oauth_google_{name}")
        )
    secret = ctx.settings.oauth_google_client_secret.get_secret_value()
    env["CADENZA_OAUTH_GOOGLE_CLIENT_SECRET"] = secret
    command = [sys.executable, "-m", "cadenza", "mailboxes", "connect", "google"]
    with subprocess.Popen(
        command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    ) as process:  # fmt: skip
        url = ""
        while not url.startswith(oauth_server.url):
            line = process.stdout.readline()
            assert line, process.stderr.read()
            url = line.strip()
        pasted = httpx.get(url, follow_redirects=False).headers["location"]
        output, errors = process.communicate(pasted + "\n", timeout=60)
    assert process.returncode == 0, errors
    assert f"mailbox {world.mailbox.id} connected: rep@example.com" in output
    assert secret not in output + errors
    assert get_mailbox(ctx, world.mailbox.id).auth_method == MailboxAuth.OAUTH2


def test_an_oauth_mailbox_keeps_its_providers_servers(ctx, world):
    """Its token is sent only where the provider's settings say: not to a host typed later."""
    mailbox = finish(ctx, world.user.id, connect(ctx, world.user.id))
    for change in ({"smtp_host": "127.0.0.9"}, {"imap_username": "x@example.com"}):
        with pytest.raises(CadenzaError) as refused:
            mailboxes.update_mailbox(ctx, mailbox.id, change, actor_id=world.user.id)
        assert refused.value.code is ErrorCode.VALIDATION_ERROR
    renamed = mailboxes.update_mailbox(ctx, mailbox.id, {"from_name": "Riley R."})
    assert renamed.from_name == "Riley R." and renamed.smtp_host == mailbox.smtp_host
