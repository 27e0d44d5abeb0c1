"""The signed-in user's own task reminder and daily digest preferences.

`/me/preferences` names no user id: everyone (viewers too) reads and changes only
their own; the policy rule is the `preferences` resource's (domain/policy.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from cadenza.domain.enums import ReminderTiming
from cadenza.domain.reminders import MAX_MINUTES_BEFORE
from cadenza.services.enrollment import reminders
from cadenza.services.enrollment.reminders import PreferencesView
from cadenza.web.auth import ApiUser, Ctx
from cadenza.web.errors import error_responses

router = APIRouter(tags=["preferences"])


class PreferencesPatch(BaseModel):
    """Only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    timing: ReminderTiming | None = Field(
        None, description="Task reminders: none, at_due (when due) or before (minutes_before)"
    )
    minutes_before: StrictInt | None = Field(None, ge=0, le=MAX_MINUTES_BEFORE)
    digest: StrictBool | None = Field(None, description="A daily email of the day's tasks")
    digest_hour: StrictInt | None = Field(
        None, ge=0, le=23, description="The local hour (your time zone) the digest comes at"
    )


class PreferencesOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    timing: ReminderTiming
    minutes_before: int
    digest: bool
    digest_hour: int
    timezone: str = Field(description="The time zone digest_hour is in")
    digest_mailbox: str | None = Field(
        description="The address digests come from (your first mailbox); null: none is sent"
    )


def _out(view: PreferencesView) -> PreferencesOut:
    return PreferencesOut.model_validate(view)


@router.get("/me/preferences", response_model=PreferencesOut, responses=error_responses(401))
def get_preferences(user: ApiUser, ctx: Ctx) -> PreferencesOut:
    return _out(reminders.get_preferences(ctx, user.id, actor_id=user.id))


@router.patch("/me/preferences", response_model=PreferencesOut, responses=error_responses(401, 422))
def patch_preferences(user: ApiUser, ctx: Ctx, body: PreferencesPatch) -> PreferencesOut:
    """Moving the reminder timing moves the reminders of your open tasks not yet due."""
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    return _out(reminders.update_preferences(ctx, user.id, changes, actor_id=user.id))
