"""Lists: static and active, their members, and enrolling a whole list in batches.

Lists are shared: everyone reads, members and admins change them. Enrolling a list
starts a job (202) the worker runs in batches of the bulk limit, as the caller, from
the caller's mailbox; `GET /list-enrollments/{id}` shows its progress. A member sees
only the jobs they started.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from cadenza.domain.enums import ListKind
from cadenza.services.crm import lists
from cadenza.services.enrollment import list_jobs as list_enrollment
from cadenza.web.auth import ApiUser, ApiWriter, Ctx
from cadenza.web.errors import MAX_ID, NO_NUL, error_responses
from cadenza.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, after_id, page
from cadenza.web.routes.contacts import ContactPage, contact_out
from cadenza.web.routes.enrollments import EnrollOptionsIn

router = APIRouter(tags=["lists"])

RowId = Annotated[int, Field(ge=1, le=MAX_ID)]
ListId = Annotated[int, Path(ge=1, le=MAX_ID)]
FILTERS_DOC = (
    'A group {"all": [...]} or {"any": [...]} of conditions {"property", "op", "value"} '
    '(add "object": "company" for associated records) and nested groups; see docs/records.md'
)


class ListIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., max_length=200, pattern=NO_NUL)
    kind: ListKind
    filters: dict[str, Any] | None = Field(None, description=FILTERS_DOC)


class ListPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200, pattern=NO_NUL)
    filters: dict[str, Any] | None = Field(None, description=FILTERS_DOC)


class ListOut(BaseModel):
    id: int
    name: str
    kind: str
    filters: dict[str, Any] | None
    size: int
    created_at: datetime
    updated_at: datetime


class ListPage(BaseModel):
    results: list[ListOut]
    next_cursor: str | None


class MembersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_ids: list[RowId] = Field(..., max_length=lists.MAX_MEMBER_CHANGE)


class MembersOut(BaseModel):
    added: int
    removed: int
    size: int


class ListEnrollIn(EnrollOptionsIn):
    """The sequence, and the same options as enrolling contacts (`EnrollOptionsIn`)."""

    sequence_id: RowId


class JobErrorOut(BaseModel):
    code: str
    message: str | None


class ListEnrollJobOut(BaseModel):
    id: int
    list_id: int
    sequence_id: int
    user_id: int
    mailbox_id: int | None
    status: str = Field(..., description="running, done or failed")
    total: int = Field(..., description="Members when the job started")
    processed: int
    enrolled: int
    refused: int
    refusals: dict[str, int] = Field(..., description="Refused contacts by error code")
    resume_at: datetime | None = Field(None, description="Held back by the daily limit until")
    error: JobErrorOut | None
    created_at: datetime
    finished_at: datetime | None


def list_out(view: lists.ListView) -> ListOut:
    c = view.contact_list
    return ListOut(
        id=c.id,
        name=c.name,
        kind=c.kind,
        filters=c.filters,
        size=view.size,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


@router.post("/lists", status_code=201, response_model=ListOut,
             responses=error_responses(401, 403, 422))  # fmt: skip
def create_list(
    body: ListIn,
    user: ApiWriter,
    ctx: Ctx,
) -> ListOut:
    return list_out(lists.create_list(ctx, user.id, body.name, body.kind, body.filters))


@router.get("/lists", response_model=ListPage, responses=error_responses(401, 422))
def list_lists(
    _user: ApiUser,
    ctx: Ctx,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
) -> dict[str, Any]:
    views = lists.list_lists(ctx, limit=limit + 1, after_id=after_id(cursor))
    more = len(views) > limit
    views = views[:limit]
    return page([list_out(v) for v in views], views[-1].contact_list.id if more else None)


@router.get("/lists/{list_id}", response_model=ListOut, responses=error_responses(401, 404, 422))
def get_list(
    list_id: ListId,
    _user: ApiUser,
    ctx: Ctx,
) -> ListOut:
    return list_out(lists.get_list(ctx, list_id))


@router.patch("/lists/{list_id}", response_model=ListOut,
              responses=error_responses(401, 403, 404, 409, 422))  # fmt: skip
def update_list(
    body: ListPatch,
    list_id: ListId,
    user: ApiWriter,
    ctx: Ctx,
) -> ListOut:
    return list_out(lists.update_list(ctx, user.id, list_id, body.model_dump(exclude_unset=True)))


@router.delete("/lists/{list_id}", status_code=204,
               responses=error_responses(401, 403, 404, 422))  # fmt: skip
def delete_list(
    list_id: ListId,
    user: ApiWriter,
    ctx: Ctx,
) -> None:
    lists.delete_list(ctx, user.id, list_id)


@router.get("/lists/{list_id}/members", response_model=ContactPage,
            responses=error_responses(401, 404, 422))  # fmt: skip
def list_members(
    list_id: ListId,
    _user: ApiUser,
    ctx: Ctx,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
) -> dict[str, Any]:
    found = lists.members(ctx, list_id, limit=limit + 1, after_id=after_id(cursor))
    more = len(found) > limit
    found = found[:limit]
    return page([contact_out(c) for c in found], found[-1].id if more else None)


@router.post("/lists/{list_id}/members", response_model=MembersOut,
             responses=error_responses(401, 403, 404, 409, 422))  # fmt: skip
def add_members(
    body: MembersIn,
    list_id: ListId,
    user: ApiWriter,
    ctx: Ctx,
) -> dict[str, Any]:
    """Static lists only; unknown contacts refuse the whole request."""
    return lists.change_members(ctx, user.id, list_id, add=body.contact_ids)


@router.post("/lists/{list_id}/members/remove", response_model=MembersOut,
             responses=error_responses(401, 403, 404, 409, 422))  # fmt: skip
def remove_members(
    body: MembersIn,
    list_id: ListId,
    user: ApiWriter,
    ctx: Ctx,
) -> dict[str, Any]:
    return lists.change_members(ctx, user.id, list_id, remove=body.contact_ids)


@router.post("/lists/{list_id}/enrollments", status_code=202, response_model=ListEnrollJobOut,
             responses=error_responses(401, 403, 404, 422))  # fmt: skip
def enroll_list(
    body: ListEnrollIn,
    list_id: ListId,
    user: ApiWriter,
    ctx: Ctx,
) -> dict[str, Any]:
    """Enrolls every member in batches of the bulk limit, as you, in the worker."""
    job = list_enrollment.start(ctx, user.id, list_id, body.sequence_id, body.options())
    return list_enrollment.describe(job)


@router.get("/list-enrollments/{job_id}", response_model=ListEnrollJobOut,
            responses=error_responses(401, 404, 422))  # fmt: skip
def get_list_enrollment(
    user: ApiUser,
    ctx: Ctx,
    job_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> dict[str, Any]:
    job = list_enrollment.get_job(ctx, job_id, actor_id=user.id)
    return list_enrollment.describe(job)
