"""Bearer-token authentication, the role guards, and a brake on guessing tokens.

The dependencies are declared once here as `Annotated` aliases: `Ctx`, and for the API
`ApiUser`, `ApiWriter`, `ApiAdmin`; the web pages' `PageUser`, `PageWriter`, `PageAdmin`
(web/ui/session.py) put the same role guards over the session cookie's user. The
guards only say who may change anything at all (viewers never write; some areas are
admins'); what a user may do to one resource is the policy the services apply
(domain/policy.py), never decided here.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from typing import Annotated

from fastapi import Depends, Request

from cadenza.domain import policy
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.context import Context
from cadenza.services.users import user_for_token
from cadenza.store.models import User

FAILED_ATTEMPTS_ALLOWED = 10
FAILED_ATTEMPTS_WINDOW = 60.0  # seconds


class FailedLogins:
    """Per client address: more than N failed authentications in a minute → 429."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        with self._lock:
            recent = self._recent(client)
            if len(recent) >= FAILED_ATTEMPTS_ALLOWED:
                raise CadenzaError(
                    ErrorCode.TOO_MANY_ATTEMPTS,
                    "too many failed authentication attempts: wait a minute",
                    {"retry_after_seconds": int(FAILED_ATTEMPTS_WINDOW)},
                )

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(time.monotonic())

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures[client]
        horizon = time.monotonic() - FAILED_ATTEMPTS_WINDOW
        while failures and failures[0] < horizon:
            failures.popleft()
        return failures


def get_ctx(request: Request) -> Context:
    return request.app.state.ctx


def current_user(request: Request, ctx: Context = Depends(get_ctx)) -> User:
    limiter: FailedLogins = request.app.state.failed_logins
    client = request.client.host if request.client else "unknown"
    limiter.check(client)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    user = user_for_token(ctx, token.strip()) if scheme.lower() == "bearer" and token else None
    if user is None:
        limiter.failed(client)
        raise CadenzaError(
            ErrorCode.UNAUTHENTICATED,
            "send a valid API token as 'Authorization: Bearer <token>'",
        )
    return user


def require_writer(user: User) -> User:
    """Any change needs a role above viewer (the API's and the pages' guard alike)."""
    if not policy.may_write(user):
        raise CadenzaError(ErrorCode.PERMISSION_DENIED, "viewers can read but not change anything")
    return user


def require_admin(user: User) -> User:
    if not policy.is_admin(user):
        raise CadenzaError(ErrorCode.PERMISSION_DENIED, "only admins can do this")
    return user


is_admin = policy.is_admin

Ctx = Annotated[Context, Depends(get_ctx)]
ApiUser = Annotated[User, Depends(current_user)]


def writer(user: ApiUser) -> User:
    return require_writer(user)


def admin(user: ApiUser) -> User:
    return require_admin(user)


ApiWriter = Annotated[User, Depends(writer)]
ApiAdmin = Annotated[User, Depends(admin)]
