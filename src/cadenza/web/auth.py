"""Bearer-token authentication, the role guards, the client's address, and a brake on
guessing tokens.

The dependencies are declared once here as `Annotated` aliases: `Ctx`, and for the API
`ApiUser`, `ApiWriter`, `ApiAdmin`; the web pages' `PageUser`, `PageWriter`, `PageAdmin`
(web/ui/session.py) are the same role guards (`role_guards`) over the session cookie's
user: how the user is found is the only difference. The guards only say who may change
anything at all (viewers never write; some areas are admins'), and ask
domain/policy.py's `check_role`; what a user may do to one resource is the policy the
services apply, never decided here. The user they hand on is a read model
(services/accounts/users.py `UserView`), never an ORM row.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from cadenza.config import Settings
from cadenza.domain import policy, token_scopes
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import Who
from cadenza.services.accounts import login_brake
from cadenza.services.accounts.users import UserView, resolve_token
from cadenza.services.context import Context


def client_address(request: Request, settings: Settings) -> str:
    """The client's address: the peer's, unless the peer is a proxy the settings trust,
    in which case the nearest address in X-Forwarded-For that is not a trusted proxy.

    No proxy is trusted by default: otherwise any client could name any address in the
    header and walk around the failed-login brake.
    """
    peer = request.client.host if request.client else "unknown"
    trusted = settings.trusted_proxy_networks
    if not trusted or not _within(peer, trusted):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _within(hop, trusted):
            return hop if _is_address(hop) else peer
    return peer


def _within(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# Dependencies that neither read the database nor block are `async def`: FastAPI runs a
# plain `def` dependency in its thread pool, a hand-over to another thread and back per
# dependency and request, which under load costs more than the dependency itself.


async def get_ctx(request: Request) -> Context:
    return request.app.state.ctx


def current_user(request: Request, ctx: Context = Depends(get_ctx)) -> UserView:
    """The token's user. A wrong token counts against the client's address; a valid one
    is always accepted (see services/accounts/login_brake.py for why)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    presented = scheme.lower() == "bearer" and bool(token.strip())
    holder = resolve_token(ctx, token.strip()) if presented else None
    if holder is None:
        if presented:
            address = client_address(request, ctx.settings)
            login_brake.check(ctx, login_brake.API_TOKEN_ACCOUNT, address)
            login_brake.failed(ctx, login_brake.API_TOKEN_ACCOUNT, address)
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


def role_guards(
    find_user: Callable[..., UserView],
) -> tuple[Callable[..., Awaitable[UserView]], Callable[..., Awaitable[UserView]]]:
    """The writer and admin guards over one way of finding the user (a dependency):
    the API's token and the pages' session cookie get the very same guards."""

    async def writer(user: UserView = Depends(find_user)) -> UserView:
        policy.check_role(user, Who.WRITER)
        return user

    async def admin(user: UserView = Depends(find_user)) -> UserView:
        policy.check_role(user, Who.ADMIN)
        return user

    return writer, admin


is_admin = policy.is_admin

Ctx = Annotated[Context, Depends(get_ctx)]

api_writer, api_admin = role_guards(current_user)
ApiUser = Annotated[UserView, Depends(current_user)]
ApiWriter = Annotated[UserView, Depends(api_writer)]
ApiAdmin = Annotated[UserView, Depends(api_admin)]
