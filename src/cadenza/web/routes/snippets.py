"""Snippets: short named blocks (`#name`) inserted while writing; create, list, read,
change, delete. Names are unique per owner (409 for a second one); the sharing rule
is the templates'."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from cadenza.domain.enums import Sharing
from cadenza.services.sequences import snippets
from cadenza.web.auth import ApiUser, ApiWriter, Ctx
from cadenza.web.errors import MAX_ID, NO_NUL, error_responses

router = APIRouter(tags=["snippets"])

SnippetId = Annotated[int, Path(ge=1, le=MAX_ID)]
NAME_DOC = "The shortcut typed as #name: 1 to 50 of a-z, 0-9, _ and -"


class SnippetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., max_length=50, pattern=NO_NUL, description=NAME_DOC)
    body: str = Field(..., max_length=snippets.MAX_BODY, pattern=NO_NUL)
    sharing: Sharing = Sharing.PRIVATE


class SnippetPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=50, pattern=NO_NUL, description=NAME_DOC)
    body: str | None = Field(None, max_length=snippets.MAX_BODY, pattern=NO_NUL)
    sharing: Sharing | None = None


class SnippetOut(BaseModel):
    id: int
    owner_id: int
    name: str
    body: str
    sharing: str
    created_at: datetime
    updated_at: datetime


class SnippetList(BaseModel):
    results: list[SnippetOut] = Field(description="One's own first, then shared ones")


def snippet_out(view: snippets.SnippetView) -> SnippetOut:
    return SnippetOut(**{name: getattr(view, name) for name in SnippetOut.model_fields})


@router.post(
    "/snippets",
    status_code=201,
    response_model=SnippetOut,
    responses=error_responses(401, 403, 409, 422),
)
def create_snippet(body: SnippetIn, user: ApiWriter, ctx: Ctx) -> SnippetOut:
    return snippet_out(snippets.create_snippet(ctx, user.id, **body.model_dump()))


@router.get("/snippets", response_model=SnippetList, responses=error_responses(401))
def list_snippets(user: ApiUser, ctx: Ctx) -> SnippetList:
    return SnippetList(results=[snippet_out(s) for s in snippets.list_snippets(ctx, user.id)])


@router.get(
    "/snippets/{snippet_id}", response_model=SnippetOut, responses=error_responses(401, 404)
)
def get_snippet(snippet_id: SnippetId, user: ApiUser, ctx: Ctx) -> SnippetOut:
    return snippet_out(snippets.get_snippet(ctx, user.id, snippet_id))


@router.patch(
    "/snippets/{snippet_id}",
    response_model=SnippetOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def update_snippet(
    snippet_id: SnippetId, body: SnippetPatch, user: ApiWriter, ctx: Ctx
) -> SnippetOut:
    changes = body.model_dump(exclude_unset=True)
    return snippet_out(snippets.update_snippet(ctx, user.id, snippet_id, changes))


@router.delete("/snippets/{snippet_id}", status_code=204, responses=error_responses(401, 403, 404))
def delete_snippet(snippet_id: SnippetId, user: ApiWriter, ctx: Ctx) -> Response:
    snippets.delete_snippet(ctx, user.id, snippet_id)
    return Response(status_code=204)
