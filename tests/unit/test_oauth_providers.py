"""OAuth provider presets, the settings laid over them, and the values that must never
show a secret (no I/O: the flow itself is tested against real servers in integration)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from cadenza.config import Settings
from cadenza.domain.enums import OAuthProvider, SmtpSecurity
from cadenza.domain.oauth_providers import PRESETS, configure
from cadenza.domain.transport_settings import SmtpSettings
from cadenza.services.oauth import client

# Google's preset without its userinfo endpoint: what the ID token alone says (no I/O).
OFFLINE_GOOGLE = replace(PRESETS[OAuthProvider.GOOGLE], userinfo_url="")


def test_presets_ask_for_the_mail_scopes_and_a_refresh_token():
    google, microsoft = PRESETS[OAuthProvider.GOOGLE], PRESETS[OAuthProvider.MICROSOFT]
    assert "https://mail.google.com/" in google.scopes
    assert ("access_type", "offline") in google.authorize_params
    assert {"offline_access", "https://outlook.office.com/SMTP.Send"} <= set(microsoft.scopes)
    assert all(not p.configured for p in PRESETS.values())  # nothing without the admin


def test_settings_lay_the_installation_over_the_preset_and_name_what_is_missing():
    settings = Settings(
        oauth_generic_client_id="cid",
        oauth_generic_client_secret="s3cret-value",
        oauth_generic_authorize_url="https://auth.corp.example/a",
        oauth_generic_token_url="https://auth.corp.example/t",
        oauth_generic_scopes="openid, email mail",
        oauth_generic_smtp_host="smtp.corp.example",
        oauth_generic_smtp_port=465,
        oauth_generic_smtp_security="tls",
    )
    generic = settings.oauth_provider("generic")
    assert generic.configured and generic.scopes == ("openid", "email", "mail")
    assert (generic.smtp_port, generic.smtp_security) == (465, SmtpSecurity.TLS)
    assert "s3cret-value" not in repr(generic) and "s3cret-value" not in repr(settings)
    assert [p.provider for p in settings.oauth_providers()] == [OAuthProvider.GENERIC]
    google = settings.oauth_provider("google")
    # Google's endpoints and servers are its preset's: only the registration is missing.
    assert google.missing == ("CADENZA_OAUTH_GOOGLE_CLIENT_ID",)
    assert (google.smtp_host, google.imap_host) == ("smtp.gmail.com", "imap.gmail.com")
    assert settings.oauth_provider("microsoft").token_url.endswith("/oauth2/v2.0/token")
    assert settings.oauth_provider("generic").authorize_url == "https://auth.corp.example/a"


def test_an_unknown_override_or_security_is_refused():
    with pytest.raises(ValueError, match="no OAuth setting"):
        configure(OAuthProvider.GOOGLE, "c", None, {"tenant": "x"})
    with pytest.raises(ValueError):
        configure(OAuthProvider.GOOGLE, "c", None, {"smtp_security": "ssl3"})
    assert isinstance(
        Settings(oauth_google_client_secret="x").oauth_google_client_secret, SecretStr
    )


def test_smtp_settings_never_show_the_access_token():
    settings = SmtpSettings(
        "h", 587, "starttls", "a@b.example", xoauth2=True, oauth_token="ya29.tok"
    )
    assert "ya29.tok" not in repr(settings) and "xoauth2=True" in repr(settings)


def _id_token(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.signature"


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"email": "ann@corp.example"}, "ann@corp.example"),
        ({"preferred_username": "bo@corp.example"}, "bo@corp.example"),  # Microsoft's
        ({"email": "not an address"}, None),
        ({}, None),
    ],
)
def test_the_account_is_read_from_the_id_token(claims, expected):
    tokens = client.Tokens(
        "acc-tok-7781", "ref-tok-7781", datetime(2026, 1, 1, tzinfo=UTC), _id_token(claims)
    )
    assert client.account_email(OFFLINE_GOOGLE, tokens) == expected
    assert "tok-7781" not in repr(tokens)


def test_a_garbled_id_token_names_nobody():
    tokens = client.Tokens("at", None, datetime(2026, 1, 1, tzinfo=UTC), "not.a-jwt!.x")
    assert client.account_email(OFFLINE_GOOGLE, tokens) is None


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        ("invalid_grant", True),
        ("invalid_client", True),
        (None, False),
        ("temporarily_unavailable", False),
    ],
)
def test_only_a_gone_grant_counts_as_refused(error, refused):
    assert client.TokenEndpointError(error, "x").refused is refused
