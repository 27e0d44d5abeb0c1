"""Bearer-token authentication, roles, and a brake on guessing tokens.

Roles: `admin` may do everything; `member` works with their own mailboxes and
enrolls when granted the enroll permission; `viewer` only reads.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

from fastapi import Depends, Request

from cadenza.domain import token_scopes
from cadenza.domain.enums import UserRole
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.context import Context
from cadenza.services.users import resolve_token
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
    holder = resolve_token(ctx, token.strip()) if scheme.lower() == "bearer" and token else None
    if holder is None:
        limiter.failed(client)
        raise CadenzaError(
            ErrorCode.UNAUTHENTICATED,
            "send a valid API token as 'Authorization: Bearer <token>'",
        )
    if not token_scopes.allows(holder.scopes, request.method, request.url.path):
        raise CadenzaError(
            ErrorCode.PERMISSION_DENIED,
            f"this token's scope ({holder.scopes}) does not open {request.url.path}",
        )
    return holder.user


def writer(user: User = Depends(current_user)) -> User:
    """Any change needs a role above viewer."""
    if user.role == UserRole.VIEWER:
        raise CadenzaError(ErrorCode.PERMISSION_DENIED, "viewers can read but not change anything")
    return user


def admin(user: User = Depends(current_user)) -> User:
    if user.role != UserRole.ADMIN:
        raise CadenzaError(ErrorCode.PERMISSION_DENIED, "only admins can do this")
    return user


def is_admin(user: User) -> bool:
    return user.role == UserRole.ADMIN
