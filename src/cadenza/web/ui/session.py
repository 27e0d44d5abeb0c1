"""The browser session: a signed cookie, the signed-in user, and CSRF protection.

The session lives in the cookie: `{"csrf": ..., "uid": ..., "epoch": ...}` signed with
itsdangerous and timestamped, so it cannot be forged and expires after SESSION_MAX_AGE.
`epoch` is the user's session epoch when it was made: signing out, a password or role
change and deactivation raise it (services/accounts/users.py), which ends every session of that
user at once, a copied cookie included. The cookie is HttpOnly, SameSite=Lax, and
Secure whenever the request came over https.

CSRF: a synchronizer token kept in the session; every form carries it in a hidden
`csrf_token` field and htmx sends it as `X-CSRF-Token` (set once on <body>). Every
unsafe method on a UI route is refused without a matching token, logged in or not
(login forms too, so nobody can sign a victim into an attacker's account).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.accounts.users import UserView, session_user
from cadenza.web.auth import Ctx, role_guards

COOKIE_NAME = "cadenza_session"
SESSION_MAX_AGE = 12 * 3600  # seconds: a working day, then sign in again
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Session:
    data: dict[str, Any] = field(default_factory=dict)
    changed: bool = False

    @property
    def csrf(self) -> str:
        if "csrf" not in self.data:
            self.data["csrf"] = secrets.token_urlsafe(32)
            self.changed = True
        return self.data["csrf"]

    def sign_in(self, user: UserView) -> None:
        # A fresh CSRF token at sign-in: one seen before it cannot be replayed after.
        self.data = {
            "csrf": secrets.token_urlsafe(32),
            "uid": user.id,
            "epoch": user.session_epoch,
        }
        self.changed = True

    def sign_out(self) -> None:
        self.data = {"csrf": secrets.token_urlsafe(32)}
        self.changed = True


class SessionCodec:
    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="cadenza.ui.session")

    def load(self, cookie: str | None) -> Session:
        if not cookie:
            return Session()
        try:
            data = self._serializer.loads(cookie, max_age=SESSION_MAX_AGE)
        except BadSignature:  # forged, tampered with or expired: start afresh
            return Session()
        return Session(data if isinstance(data, dict) else {})

    def dump(self, session: Session) -> str:
        return self._serializer.dumps(session.data)


def session_of(request: Request) -> Session:
    return request.state.ui_session


class LoginRequired(Exception):
    """Raised by page dependencies; answered with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def local_path(target: str | None) -> str:
    """Only a path on this site: never `//host`, `/\\host` or a URL with a scheme."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or any(ch in target for ch in "\\\r\n\t")
    ):
        return "/"
    return target


def login_url(next_path: str) -> str:
    return "/login?next=" + quote(local_path(next_path), safe="/")


def signed_in_user(request: Request, ctx: Ctx) -> UserView:
    session = session_of(request)
    uid = session.data.get("uid")
    user = session_user(ctx, uid, session.data.get("epoch")) if isinstance(uid, int) else None
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    request.state.ui_user = user
    return user


ui_writer, ui_admin = role_guards(signed_in_user)
PageUser = Annotated[UserView, Depends(signed_in_user)]
PageWriter = Annotated[UserView, Depends(ui_writer)]
PageAdmin = Annotated[UserView, Depends(ui_admin)]


async def check_csrf(request: Request) -> None:
    if request.method in SAFE_METHODS:
        return
    expected = session_of(request).data.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = (await request.form()).get(CSRF_FIELD)
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
        raise CadenzaError(
            ErrorCode.CSRF_FAILED,
            "this form has expired or did not come from Cadenza: reload the page and try again",
        )
