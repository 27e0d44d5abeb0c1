"""Integration tokens: API tokens an admin creates for another system, limited by scope.

The `events` scope opens `POST /api/v1/events` and the provider webhooks and nothing
else, so a CRM or an email provider holding the token can report a reply or a bounce
but cannot read contacts or change sequences if it leaks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from cadenza.services.accounts import users
from cadenza.web.auth import ApiAdmin, Ctx
from cadenza.web.errors import MAX_ID, NO_NUL, error_responses

router = APIRouter(tags=["integration tokens"])


class IntegrationTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=100, pattern=NO_NUL)
    scopes: list[Literal["events"]] = Field(["events"], min_length=1)


class IntegrationTokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class IntegrationTokenCreated(IntegrationTokenOut):
    token: str = Field(description="Shown this once; only its hash is stored")


def _out(row) -> dict:
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "scopes": (row.scopes or "").split(),
        "created_at": row.created_at,
        "last_used_at": row.last_used_at,
        "revoked_at": row.revoked_at,
    }


@router.post(
    "/integration-tokens",
    status_code=201,
    response_model=IntegrationTokenCreated,
    responses=error_responses(401, 403, 422),
)
def create_integration_token(body: IntegrationTokenIn, user: ApiAdmin, ctx: Ctx) -> dict:
    """A token for another system, owned by the admin creating it, that opens only its
    scopes (`events`: posting events with that admin's authority)."""
    issued = users.create_token(ctx, user.id, body.name, scopes=list(body.scopes))
    [row] = [t for t in users.list_tokens(ctx, user.id) if t.id == issued.id]
    return {**_out(row), "token": issued.token}


@router.get(
    "/integration-tokens",
    response_model=list[IntegrationTokenOut],
    responses=error_responses(401, 403),
)
def list_integration_tokens(user: ApiAdmin, ctx: Ctx):
    """The calling admin's scoped tokens, live and revoked (prefixes only)."""
    return [_out(t) for t in users.list_tokens(ctx, user.id) if t.scopes]


@router.delete(
    "/integration-tokens/{token_id}",
    response_model=IntegrationTokenOut,
    responses=error_responses(401, 403, 404, 422),
)
def revoke_integration_token(
    user: ApiAdmin,
    ctx: Ctx,
    token_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> dict:
    return _out(users.revoke_token(ctx, user.id, token_id, actor_id=user.id))
