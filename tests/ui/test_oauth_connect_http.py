"""Connecting an OAuth mailbox from the settings page, over HTTP, against the local
authorization server and the SMTP sink that takes AUTH XOAUTH2 (tests/support): the
button, the redirect to the provider with PKCE, the callback, the banner once the
provider refuses a refresh, and connecting again."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pytest

from cadenza.services.accounts import mailboxes
from cadenza.services.oauth import tokens
from tests.support.oauth_server import google_preset_settings
from tests.ui.conftest import Ui, set_password

PUBLIC_URL = "http://127.0.0.1:8000"


@pytest.fixture
def settings(settings, oauth_server, oauth_sink):
    return google_preset_settings(
        settings, oauth_server, oauth_sink, f"{PUBLIC_URL}/oauth/callback", public_url=PUBLIC_URL
    )


@pytest.fixture
def rep_ui(ctx, world):
    set_password(ctx, world.user.id, "pw")
    return Ui(ctx, world).sign_in("rep@example.com", "pw", "/settings")


def connect_from_settings(ui: Ui):
    """Click "Connect Google", let the provider consent, follow its redirect back."""
    page = ui.client.get("/settings")
    assert 'data-oauth="google"' in page.text and "Connect Google" in page.text
    assert "Connect Microsoft" not in page.text  # not configured here: no button
    start = ui.client.get("/settings/mailboxes/oauth/google/start", follow_redirects=False)
    assert start.status_code == 303
    consent = httpx.get(start.headers["location"], follow_redirects=False)
    back = urlsplit(consent.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == f"{PUBLIC_URL}/oauth/callback"
    return ui.client.get(f"/oauth/callback?{back.query}")


def test_connect_google_from_settings_then_a_refused_refresh_shows_the_banner(
    rep_ui, ctx, world, oauth_server
):
    done = connect_from_settings(rep_ui)
    assert done.status_code == 200
    assert "Connected rep@example.com" in done.text
    box = mailboxes.get_mailbox(ctx, world.mailbox.id)
    assert box.auth_method == "oauth2" and box.connected
    assert "disconnected-banner" not in done.text

    oauth_server.revoke_grants("rep@example.com")
    ctx.clock.advance(timedelta(hours=2))
    assert tokens.refresh_if_due(ctx, box.id) is False
    page = rep_ui.client.get("/contacts")  # any page: the banner follows the owner
    assert "disconnected-banner" in page.text and "invalid_grant" in page.text
    assert "Connect it again" in page.text

    again = connect_from_settings(rep_ui)
    assert "Connected rep@example.com" in again.text
    assert "disconnected-banner" not in again.text
    assert mailboxes.get_mailbox(ctx, box.id).connected


def test_a_callback_with_someone_elses_or_no_state_is_refused_with_a_message(rep_ui, ctx, world):
    missing = rep_ui.client.get("/oauth/callback?code=abc")
    assert missing.status_code == 422 and "start connecting again" in missing.text
    hostile = rep_ui.client.get("/oauth/callback", params={"state": "x" * 5000, "code": "<b>"})
    assert hostile.status_code == 422 and "<b>" not in hostile.text
    unknown = rep_ui.client.get("/settings/mailboxes/oauth/yahoo/start", follow_redirects=False)
    assert unknown.status_code == 404 and "no OAuth provider" in unknown.text


def test_test_connection_renews_an_expired_token_first(
    rep_ui, ctx, world, oauth_server, oauth_sink
):
    connect_from_settings(rep_ui)
    ctx.clock.advance(timedelta(hours=2))  # past the token's hour, by our clock
    tested = rep_ui.client.post(
        f"/settings/mailboxes/{world.mailbox.id}/test", data={"csrf_token": rep_ui.token}
    )
    assert "Connection works" in tested.text
    assert oauth_server.refreshes == 1 and oauth_sink.message_count == 0


def test_the_api_starts_and_finishes_a_connect(ctx, world, oauth_server):
    from urllib.parse import parse_qs

    from cadenza.services.accounts.users import create_token

    token = create_token(ctx, world.user.id, "oauth").token
    api = Ui(ctx, world).client
    api.headers["Authorization"] = f"Bearer {token}"
    started = api.post("/api/v1/mailboxes/oauth/google/start", json={})
    assert started.status_code == 200, started.text
    consent = httpx.get(started.json()["authorization_url"], follow_redirects=False)
    query = {k: v[0] for k, v in parse_qs(urlsplit(consent.headers["location"]).query).items()}
    done = api.post("/api/v1/mailboxes/oauth/finish", json=query)
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["auth_method"], body["oauth_provider"], body["connected"]) == (
        "oauth2",
        "google",
        True,
    )
    assert "token" not in " ".join(body) and body["has_password"] is False
    again = api.post("/api/v1/mailboxes/oauth/finish", json=query)  # a state is spent
    assert again.status_code == 422 and again.json()["error"]["code"] == "validation_error"
