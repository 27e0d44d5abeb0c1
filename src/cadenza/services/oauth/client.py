"""The OAuth 2.0 client side, on Authlib: authorization URLs, code exchange, refresh.

Everything that talks to a provider's token endpoint is here, so the use cases
(connect.py, tokens.py) only see the token values and one exception with the
provider's error code. Expiry is computed from the injected clock, not from Authlib's
wall clock, so a test on a FrozenClock decides when a token is due for refresh.
"""

from __future__ import annotations

import base64
import binascii
import json
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from authlib.common.security import generate_token
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client import OAuthError
from httpx import HTTPError

# Authlib 1.9 warns, at import, that it will move from httpx to the httpx2 package. The
# warning is for us, not for whoever runs `cadenza`: without this it is printed on
# every command's start. Cadenza stays on httpx (which FastAPI's TestClient and the rest
# of the code use) until that move is made as one change.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

from cadenza.domain.oauth_providers import OAuthProviderConfig

TIMEOUT_SECONDS = 30.0
# What a token response without `expires_in` is taken to last: one hour, the usual.
DEFAULT_LIFETIME = timedelta(hours=1)


class TokenEndpointError(Exception):
    """The provider answered no (`error` is its code: invalid_grant means the grant is
    gone for good), or could not be reached (`error` is None: try again later)."""

    def __init__(self, error: str | None, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description

    @property
    def refused(self) -> bool:
        """The grant itself is refused: revoked consent, deleted account, expired grant.
        Retrying cannot help; only the owner reconnecting can."""
        return self.error in ("invalid_grant", "unauthorized_client", "invalid_client")


@dataclass(frozen=True)
class Tokens:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime
    id_token: str | None = field(default=None, repr=False)


def new_state() -> str:
    return generate_token(40)


def new_code_verifier() -> str:
    """RFC 7636: 43 to 128 characters of [A-Za-z0-9-._~]; Authlib's tokens are of those."""
    return generate_token(64)


def _client(config: OAuthProviderConfig, redirect_uri: str | None = None) -> OAuth2Client:
    return OAuth2Client(
        client_id=config.client_id,
        client_secret=config.client_secret or None,
        scope=" ".join(config.scopes),
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        # The secret in the form body: what both big providers document for web apps.
        token_endpoint_auth_method="client_secret_post" if config.client_secret else "none",
        timeout=TIMEOUT_SECONDS,
        trust_env=False,
    )


def authorization_url(
    config: OAuthProviderConfig, redirect_uri: str, state: str, code_verifier: str
) -> str:
    with _client(config, redirect_uri) as client:
        url, _ = client.create_authorization_url(
            config.authorize_url,
            state=state,
            code_verifier=code_verifier,
            **dict(config.authorize_params),
        )
    return str(url)


def exchange_code(
    config: OAuthProviderConfig, redirect_uri: str, code: str, code_verifier: str, now: datetime
) -> Tokens:
    with _client(config, redirect_uri) as client:
        token = _call(
            client.fetch_token,
            config.token_url,
            grant_type="authorization_code",
            code=code,
            code_verifier=code_verifier,
        )
    return _tokens(token, now, None)


def refresh(config: OAuthProviderConfig, refresh_token: str, now: datetime) -> Tokens:
    with _client(config) as client:
        token = _call(client.refresh_token, config.token_url, refresh_token=refresh_token)
    # A provider may keep the refresh token (Google) or rotate it (Microsoft).
    return _tokens(token, now, refresh_token)


def account_email(config: OAuthProviderConfig, tokens: Tokens) -> str | None:
    """The address the grant belongs to: the ID token's `email` (or Microsoft's
    `preferred_username`), else the provider's userinfo endpoint.

    The ID token comes straight from the token endpoint over the connection we opened,
    so its claims are read without checking its signature (OpenID Connect Core 3.1.3.7:
    TLS server validation may stand in for it); nothing here trusts it for more than
    naming the mailbox, which the provider then lets us send from only if it is theirs.
    """
    if tokens.id_token:
        claims = _unverified_claims(tokens.id_token)
        email = claims.get("email") or claims.get("preferred_username")
        if isinstance(email, str) and "@" in email:
            return email
    if not config.userinfo_url:
        return None
    with _client(config) as client:
        client.token = {"access_token": tokens.access_token, "token_type": "Bearer"}
        try:
            response = client.get(config.userinfo_url)
            response.raise_for_status()
            info = response.json()
        except (HTTPError, ValueError) as exc:
            raise TokenEndpointError(None, f"userinfo: {exc}") from None
    email = info.get("email") or info.get("mail") if isinstance(info, dict) else None
    return email if isinstance(email, str) else None


def _call(method: Any, *args: Any, **kwargs: Any) -> dict:
    try:
        token = method(*args, **kwargs)
    except OAuthError as exc:
        raise TokenEndpointError(exc.error, exc.description or exc.error or "refused") from None
    except (HTTPError, ValueError) as exc:
        raise TokenEndpointError(None, f"token endpoint: {type(exc).__name__}: {exc}") from None
    if not isinstance(token, dict) or not token.get("access_token"):
        raise TokenEndpointError(None, "the token endpoint answered without an access token")
    return dict(token)


def _tokens(token: dict, now: datetime, previous_refresh: str | None) -> Tokens:
    try:
        lifetime = timedelta(seconds=int(token["expires_in"]))
    except (KeyError, TypeError, ValueError):
        lifetime = DEFAULT_LIFETIME
    return Tokens(
        access_token=str(token["access_token"]),
        refresh_token=token.get("refresh_token") or previous_refresh,
        expires_at=now + lifetime,
        id_token=token.get("id_token"),
    )


def _unverified_claims(id_token: str) -> dict:
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}
