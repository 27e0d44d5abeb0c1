"""The template library: create, search, read, change, archive, preview for a contact,
and each template's figures.

Who may read or change a template follows its sharing (services; `policy.shared_may`):
another member's private template answers 404, one shared to use answers 403 to a
change. Steps use a template through `template_id` on the sequences API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from cadenza.domain.enums import Sharing
from cadenza.services.analytics.template_figures import template_figures
from cadenza.services.sequences import templates_library as library
from cadenza.web.auth import ApiUser, ApiWriter, Ctx
from cadenza.web.errors import MAX_ID, NO_NUL, error_responses
from cadenza.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, after_id, paged

router = APIRouter(tags=["templates"])

TemplateId = Annotated[int, Path(ge=1, le=MAX_ID)]
MAX_TEMPLATE = 200_000  # past this the request model refuses; the template limits say more below


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=200, pattern=NO_NUL)
    subject: str = Field(..., min_length=1, max_length=MAX_TEMPLATE, pattern=NO_NUL)
    body: str = Field(
        ..., min_length=1, max_length=MAX_TEMPLATE, pattern=NO_NUL, description="HTML template"
    )
    folder: str | None = Field(None, max_length=100, pattern=NO_NUL)
    sharing: Sharing = Sharing.PRIVATE


class TemplatePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200, pattern=NO_NUL)
    subject: str | None = Field(None, min_length=1, max_length=MAX_TEMPLATE, pattern=NO_NUL)
    body: str | None = Field(None, min_length=1, max_length=MAX_TEMPLATE, pattern=NO_NUL)
    folder: str | None = Field(None, max_length=100, pattern=NO_NUL, description="'' to clear")
    sharing: Sharing | None = Field(None, description="Only the owner or an admin changes it")


class TemplateOut(BaseModel):
    id: int
    owner_id: int
    name: str
    subject: str
    body: str
    folder: str | None
    sharing: str
    archived: bool
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TemplatePage(BaseModel):
    results: list[TemplateOut]
    next_cursor: str | None


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_id: int = Field(..., ge=1, le=MAX_ID)


class PreviewOut(BaseModel):
    subject: str | None
    body_html: str | None
    problems: list[str] = Field(description="Tokens the contact lacks, render failures")


class FiguresOut(BaseModel):
    template_id: int
    used_in_steps: int = Field(description="Sequence steps using it by reference")
    sent: int
    opened: int
    clicked: int
    replied: int
    reply_rate: float | None = Field(description="replied / sent; null before any send")


def template_out(view: library.TemplateView) -> TemplateOut:
    return TemplateOut(
        **{name: getattr(view, name) for name in TemplateOut.model_fields if name != "archived"},
        archived=view.archived_at is not None,
    )


@router.post(
    "/templates",
    status_code=201,
    response_model=TemplateOut,
    responses=error_responses(401, 403, 422),
)
def create_template(body: TemplateIn, user: ApiWriter, ctx: Ctx) -> TemplateOut:
    return template_out(library.create_template(ctx, user.id, **body.model_dump()))


@router.get("/templates", response_model=TemplatePage, responses=error_responses(401, 422))
def list_templates(
    user: ApiUser,
    ctx: Ctx,
    q: str | None = Query(None, max_length=200, pattern=NO_NUL, description="In name or subject"),
    folder: str | None = Query(None, max_length=100, pattern=NO_NUL),
    archived: bool = Query(False, description="List the archived ones instead"),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, max_length=20),
):
    rows = library.list_templates(
        ctx,
        user.id,
        search=q,
        folder=folder,
        archived=archived,
        limit=limit + 1,
        after_id=after_id(cursor),
    )
    return paged(rows, limit, template_out)


@router.get(
    "/templates/{template_id}", response_model=TemplateOut, responses=error_responses(401, 404)
)
def get_template(template_id: TemplateId, user: ApiUser, ctx: Ctx) -> TemplateOut:
    return template_out(library.get_template(ctx, user.id, template_id))


@router.patch(
    "/templates/{template_id}",
    response_model=TemplateOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def update_template(
    template_id: TemplateId, body: TemplatePatch, user: ApiWriter, ctx: Ctx
) -> TemplateOut:
    """A new subject or body reaches the steps using it by reference, for enrollments
    that start afterwards; running enrollments keep the text they started with."""
    changes = body.model_dump(exclude_unset=True)
    return template_out(library.update_template(ctx, user.id, template_id, changes))


@router.delete(
    "/templates/{template_id}",
    response_model=TemplateOut,
    responses=error_responses(401, 403, 404),
)
def archive_template(template_id: TemplateId, user: ApiWriter, ctx: Ctx) -> TemplateOut:
    """Archived, not deleted: steps using it keep their text; unarchive to pick it again."""
    return template_out(library.set_archived(ctx, user.id, template_id, True))


@router.post(
    "/templates/{template_id}/unarchive",
    response_model=TemplateOut,
    responses=error_responses(401, 403, 404),
)
def unarchive_template(template_id: TemplateId, user: ApiWriter, ctx: Ctx) -> TemplateOut:
    return template_out(library.set_archived(ctx, user.id, template_id, False))


@router.post(
    "/templates/{template_id}/preview",
    response_model=PreviewOut,
    responses=error_responses(401, 404, 422),
)
def preview_template(
    template_id: TemplateId, body: PreviewIn, user: ApiUser, ctx: Ctx
) -> PreviewOut:
    shown = library.preview_template(ctx, user.id, template_id, body.contact_id)
    return PreviewOut(subject=shown.subject, body_html=shown.body_html, problems=shown.problems)


@router.get(
    "/templates/{template_id}/figures",
    response_model=FiguresOut,
    responses=error_responses(401, 404),
)
def figures(template_id: TemplateId, user: ApiUser, ctx: Ctx) -> FiguresOut:
    library.get_template(ctx, user.id, template_id)  # may the user read it at all
    found = template_figures(ctx, [template_id])[template_id]
    return FiguresOut(
        template_id=template_id,
        used_in_steps=found.used_in_steps,
        sent=found.sent,
        opened=found.opened,
        clicked=found.clicked,
        replied=found.replied,
        reply_rate=found.reply_rate,
    )
