"""A real OAuth 2.0 authorization server on loopback, for tests: Authlib's
AuthorizationServer behind a small werkzeug WSGI app, served in a thread.

It does what a provider does for a mail app, over real HTTP: the authorization-code
grant with PKCE (S256 required), refresh (rotating the refresh token, as Microsoft
does), revocation (RFC 7009: revoking a token ends its whole grant, as Google does),
introspection (RFC 7662, what dovecot's oauth2 passdb and the SMTP sink ask) and a
userinfo endpoint naming the account. The authorization endpoint consents at once for
`login_as` (no login page): a test drives the redirect itself, or a browser follows it.

Tests act as the account owner through `revoke_grants` (consent withdrawn in the
provider's account page) and ask `is_live` whether a token would still be accepted.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, JsonPayload, JsonRequest, OAuth2Payload, grants
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

ACCESS_LIFETIME = 3600


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    scope: str

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope):
        allowed = set(self.scope.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret):
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method, endpoint):
        return method in ("client_secret_post", "client_secret_basic")

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str | None
    code_challenge_method: str | None
    grant_id: str

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope


@dataclass
class Token:
    client_id: str
    user: str
    scope: str
    access_token: str
    refresh_token: str | None
    issued_at: float
    expires_in: int
    grant_id: str
    revoked: bool = False

    def check_client(self, client):
        return client.get_client_id() == self.client_id

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return self.expires_in

    def is_expired(self):
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self):
        return self.revoked

    def get_user(self):
        return self.user

    def get_client(self):
        return None


@dataclass
class _Store:
    lock: threading.Lock = field(default_factory=threading.Lock)
    clients: dict[str, Client] = field(default_factory=dict)
    codes: dict[str, Code] = field(default_factory=dict)
    tokens: list[Token] = field(default_factory=list)
    refreshes: int = 0
    revoked_grants: set[str] = field(default_factory=set)


class _Payload(OAuth2Payload):
    def __init__(self, request: Request) -> None:
        self._request = request

    @property
    def data(self):
        return self._request.values

    @property
    def datalist(self):
        values = defaultdict(list)
        for key in self._request.values:
            values[key].extend(self._request.values.getlist(key))
        return values


class _Request(OAuth2Request):
    def __init__(self, request: Request) -> None:
        super().__init__(method=request.method, uri=request.url, headers=request.headers)
        self._request = request
        self.payload = _Payload(request)

    @property
    def args(self):
        return self._request.args

    @property
    def form(self):
        return self._request.form


class _JsonPayload(JsonPayload):
    def __init__(self, request: Request) -> None:
        self._request = request

    @property
    def data(self):
        return self._request.get_json()


class _Server(AuthorizationServer):
    def __init__(self, store: _Store) -> None:
        super().__init__()
        self.store = store
        self.register_token_generator(
            "default", BearerTokenGenerator(_token, _token, lambda client, grant: ACCESS_LIFETIME)
        )

    def query_client(self, client_id):
        return self.store.clients.get(client_id)

    def save_token(self, token, request):
        user = request.user
        grant_id = getattr(request, "grant_id", None) or secrets.token_hex(8)
        with self.store.lock:
            self.store.tokens.append(
                Token(
                    client_id=request.client.get_client_id(),
                    user=user,
                    scope=token.get("scope", ""),
                    access_token=token["access_token"],
                    refresh_token=token.get("refresh_token"),
                    issued_at=time.time(),
                    expires_in=int(token.get("expires_in", ACCESS_LIFETIME)),
                    grant_id=grant_id,
                )
            )

    def create_oauth2_request(self, request):
        return request if isinstance(request, OAuth2Request) else _Request(request)

    def create_json_request(self, request):
        json_request = JsonRequest(request.method, request.url, request.headers)
        json_request.payload = _JsonPayload(request)
        return json_request

    def handle_response(self, status, body, headers):
        if isinstance(body, dict):
            import json

            body = json.dumps(body)
        return Response(body, status=status, headers=headers)

    def send_signal(self, name, *args, **kwargs):
        pass


def _token(*args, **kwargs) -> str:
    return secrets.token_urlsafe(32)


class _CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_post", "client_secret_basic"]

    def save_authorization_code(self, code, request):
        payload = request.payload.data
        self.server.store.codes[code] = Code(
            code=code,
            client_id=request.client.get_client_id(),
            redirect_uri=payload.get("redirect_uri", ""),
            scope=payload.get("scope", ""),
            user=request.user,
            code_challenge=payload.get("code_challenge"),
            code_challenge_method=payload.get("code_challenge_method"),
            grant_id=secrets.token_hex(8),
        )

    def query_authorization_code(self, code, client):
        found = self.server.store.codes.get(code)
        if found and found.client_id == client.get_client_id():
            return found
        return None

    def delete_authorization_code(self, authorization_code):
        self.server.store.codes.pop(authorization_code.code, None)
        self.request.grant_id = authorization_code.grant_id

    def authenticate_user(self, authorization_code):
        return authorization_code.user


class _RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_post", "client_secret_basic"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotates, as Microsoft does

    def authenticate_refresh_token(self, refresh_token):
        store = self.server.store
        with store.lock:
            for token in store.tokens:
                if token.refresh_token == refresh_token and not token.revoked:
                    if token.grant_id in store.revoked_grants:
                        return None
                    return token
        return None

    def authenticate_user(self, refresh_token):
        self.request.grant_id = refresh_token.grant_id
        return refresh_token.user

    def revoke_old_credential(self, refresh_token):
        with self.server.store.lock:
            refresh_token.revoked = True
            self.server.store.refreshes += 1


class _Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_post", "client_secret_basic"]

    def query_token(self, token_string, token_type_hint):
        return self.server.find(token_string)

    def revoke_token(self, token, request):
        self.server.owner.revoke_grant(token.grant_id)


class _Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_post", "client_secret_basic"]

    def query_token(self, token_string, token_type_hint):
        return self.server.find(token_string)

    def check_permission(self, token, client, request):
        return True

    def introspect_token(self, token):
        return {
            "active": True,
            "client_id": token.client_id,
            "token_type": "Bearer",
            "username": token.user,
            "email": token.user,
            "scope": token.scope,
            "exp": int(token.issued_at + token.expires_in),
            "iat": int(token.issued_at),
        }


class OAuthServer:
    """Start with `with OAuthServer() as server:`; `register_client` for each test app."""

    def __init__(self, login_as: str = "rep@example.com") -> None:
        self.login_as = login_as
        self.deny_next = False  # the user clicks "Cancel" on the consent screen
        self.store = _Store()
        self.server = _Server(self.store)
        self.server.find = self._find
        self.server.owner = self
        self.server.register_grant(_CodeGrant, [CodeChallenge(required=True)])
        self.server.register_grant(_RefreshGrant)
        self.server.register_endpoint(_Revocation)
        self.server.register_endpoint(_Introspection)
        self._http = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.host, self.port = "127.0.0.1", self._http.server_port
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def __enter__(self) -> OAuthServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(5)

    # -- what a test sets up and asks ---------------------------------------------------

    def register_client(self, redirect_uri: str, scope: str) -> tuple[str, str]:
        client = Client(
            client_id=f"client-{secrets.token_hex(4)}",
            client_secret=secrets.token_urlsafe(24),
            redirect_uris=[redirect_uri],
            scope=scope,
        )
        self.store.clients[client.client_id] = client
        return client.client_id, client.client_secret

    def endpoints(self) -> dict[str, str]:
        return {
            "authorize_url": f"{self.url}/authorize",
            "token_url": f"{self.url}/token",
            "revoke_url": f"{self.url}/revoke",
            "userinfo_url": f"{self.url}/userinfo",
        }

    def introspection_url(self, client_id: str, client_secret: str) -> str:
        """For a resource server that authenticates in the URL (dovecot's oauth2 passdb)."""
        return f"http://{client_id}:{client_secret}@{self.host}:{self.port}/introspect"

    def revoke_grants(self, user: str) -> int:
        """The account owner withdraws consent: every grant of theirs ends."""
        with self.store.lock:
            grants_ = {t.grant_id for t in self.store.tokens if t.user == user}
        for grant_id in grants_:
            self.revoke_grant(grant_id)
        return len(grants_)

    def revoke_grant(self, grant_id: str) -> None:
        with self.store.lock:
            self.store.revoked_grants.add(grant_id)
            for token in self.store.tokens:
                if token.grant_id == grant_id:
                    token.revoked = True

    def is_live(self, user: str, access_token: str) -> bool:
        """Would a mail server accept this token for this account now?"""
        token = self._find(access_token)
        return (
            token is not None
            and token.access_token == access_token
            and token.user == user
            and not token.revoked
            and not token.is_expired()
        )

    @property
    def refreshes(self) -> int:
        with self.store.lock:
            return self.store.refreshes

    def _find(self, token_string: str) -> Token | None:
        with self.store.lock:
            for token in self.store.tokens:
                if token_string in (token.access_token, token.refresh_token):
                    return token
        return None

    # -- HTTP ---------------------------------------------------------------------------

    def _app(self, environ: dict, start_response: Any):
        request = Request(environ)
        response = self._route(request)
        return response(environ, start_response)

    def _route(self, request: Request) -> Response:
        path = request.path
        if path == "/authorize":
            if self.deny_next:
                self.deny_next = False
                grant = self.server.get_consent_grant(_Request(request), end_user=None)
                return self.server.create_authorization_response(
                    _Request(request), grant_user=None, grant=grant
                )
            return self.server.create_authorization_response(
                _Request(request), grant_user=self.login_as
            )
        if path == "/token":
            return self.server.create_token_response(_Request(request))
        if path == "/revoke":
            return self.server.create_endpoint_response("revocation", _Request(request))
        if path == "/introspect":
            return self.server.create_endpoint_response("introspection", _Request(request))
        if path == "/userinfo":
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            token = self._find(value) if scheme.lower() == "bearer" else None
            if token is None or not self.is_live(token.user, value):
                return Response('{"error": "invalid_token"}', status=401)
            return Response(
                f'{{"sub": "{token.user}", "email": "{token.user}"}}',
                content_type="application/json",
            )
        return Response("not found", status=404)


def google_preset_settings(settings, server: OAuthServer, sink, redirect_uri: str, **more):
    """`settings` with the Google preset pointed at `server` (a client registered for
    `redirect_uri`) and its SMTP host at `sink`: what an admin sets, for a test."""
    from pydantic import SecretStr

    client_id, secret = server.register_client(
        redirect_uri, "openid email https://mail.google.com/"
    )
    endpoints = {f"oauth_google_{k}": v for k, v in server.endpoints().items()}
    return settings.model_copy(
        update={
            "outbound_allow": "127.0.0.1",
            "oauth_google_client_id": client_id,
            "oauth_google_client_secret": SecretStr(secret),
            "oauth_google_smtp_host": sink.host,
            "oauth_google_smtp_port": sink.port,
            "oauth_google_smtp_security": "none",
            **endpoints,
            **more,
        }
    )
