"""The signed-in user's profile: the email signature and the meeting link they send with
(docs/content.md). An admin may set them for another user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from cadenza.domain import signatures
from cadenza.services.accounts import profile
from cadenza.web.auth import ApiAdmin, ApiUser, Ctx
from cadenza.web.errors import MAX_ID, NO_NUL, error_responses

router = APIRouter(tags=["profile"])


class ProfileOut(BaseModel):
    user_id: int
    email: str
    signature_html: str | None = Field(description="Sanitised HTML; {{ sender.signature }}")
    meeting_link: str | None = Field(description="An http(s) URL; {{ sender.meeting_link }}")


class ProfilePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signature_html: str | None = Field(
        None,
        max_length=signatures.MAX_SIGNATURE_CHARS,
        pattern=NO_NUL,
        description="HTML; sanitised when saved. Null or empty clears it.",
    )
    meeting_link: str | None = Field(
        None,
        max_length=signatures.MAX_LINK_CHARS,
        pattern=NO_NUL,
        description="An absolute http(s) URL. Null or empty clears it.",
    )


def _out(found: profile.Profile) -> ProfileOut:
    return ProfileOut(**found.__dict__)


@router.get("/me/profile", response_model=ProfileOut, responses=error_responses(401))
def get_my_profile(user: ApiUser, ctx: Ctx) -> ProfileOut:
    return _out(profile.get_profile(ctx, user.id, user.id))


@router.patch("/me/profile", response_model=ProfileOut, responses=error_responses(401, 422))
def update_my_profile(body: ProfilePatch, user: ApiUser, ctx: Ctx) -> ProfileOut:
    """Only the fields sent change; `null` or `""` clears one."""
    changes = body.model_dump(exclude_unset=True)
    return _out(profile.update_profile(ctx, user.id, user.id, changes))


@router.patch(
    "/users/{user_id}/profile",
    response_model=ProfileOut,
    responses=error_responses(401, 403, 404, 422),
)
def update_user_profile(
    body: ProfilePatch,
    user: ApiAdmin,
    ctx: Ctx,
    user_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> ProfileOut:
    """An admin sets another user's signature or meeting link."""
    changes = body.model_dump(exclude_unset=True)
    return _out(profile.update_profile(ctx, user.id, user_id, changes))
