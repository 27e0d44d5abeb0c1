"""Automation rules and their run logs. Everyone reads; only admins create, change,
switch on/off and delete rules (a rule acts as the user it names)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from cadenza.services.automation import rules as automation_rules
from cadenza.services.automation import runner as automation
from cadenza.services.automation.rules import RuleView
from cadenza.web.auth import ApiAdmin, ApiUser, Ctx
from cadenza.web.errors import MAX_ID, NO_NUL, error_responses
from cadenza.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, after_id, paged

router = APIRouter(tags=["automation"])

RuleId = Annotated[int, Path(ge=1, le=MAX_ID)]
TRIGGER_DOC = (
    'e.g. {"type": "list_added", "list_id": 3} or {"type": "property_changed", '
    '"property": "plan", "value": "pro"}; see docs/records.md'
)
ACTION_DOC = (
    '{"type": "enroll", "user_id", "mailbox_id", "start_step", "timezone"} or '
    '{"type": "unenroll", "scope": "this" | "all"}'
)


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., max_length=200, pattern=NO_NUL)
    sequence_id: int | None = Field(None, ge=1, le=MAX_ID, description="The rule's sequence")
    trigger: dict[str, Any] = Field(..., description=TRIGGER_DOC)
    conditions: dict[str, Any] | None = Field(None, description="The list filter language")
    action: dict[str, Any] = Field(..., description=ACTION_DOC)
    enabled: bool = True


class RulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200, pattern=NO_NUL)
    sequence_id: int | None = Field(None, ge=1, le=MAX_ID)
    trigger: dict[str, Any] | None = None
    conditions: dict[str, Any] | None = None
    action: dict[str, Any] | None = None
    enabled: bool | None = None


class RuleOut(BaseModel):
    id: int
    name: str
    sequence_id: int | None
    trigger: dict[str, Any]
    conditions: dict[str, Any] | None
    action: dict[str, Any]
    enabled: bool
    resume_at: datetime | None = Field(None, description="Held by the daily limit until")
    created_at: datetime
    updated_at: datetime


class RulePage(BaseModel):
    results: list[RuleOut]
    next_cursor: str | None


class RunOut(BaseModel):
    id: int
    rule_id: int
    event_id: int
    contact_id: int | None
    outcome: str = Field(..., description="enrolled, unenrolled, refused, skipped or failed")
    code: str | None
    message: str | None
    enrollment_id: int | None
    at: datetime


class RunPage(BaseModel):
    results: list[RunOut]
    next_cursor: str | None


def rule_out(rule: RuleView) -> RuleOut:
    return RuleOut(
        id=rule.id,
        name=rule.name,
        sequence_id=rule.sequence_id,
        trigger=rule.trigger,
        conditions=rule.conditions,
        action=rule.action,
        enabled=rule.enabled,
        resume_at=rule.resume_at,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


@router.post("/automation/rules", status_code=201, response_model=RuleOut,
             responses=error_responses(401, 403, 404, 422))  # fmt: skip
def create_rule(body: RuleIn, user: ApiAdmin, ctx: Ctx):
    return rule_out(automation_rules.create_rule(ctx, user.id, **body.model_dump()))


@router.get("/automation/rules", response_model=RulePage, responses=error_responses(401, 422))
def list_rules(
    _user: ApiUser,
    ctx: Ctx,
    sequence_id: int | None = Query(None, ge=1, le=MAX_ID, description="A sequence's rules"),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
) -> dict[str, Any]:
    rules = automation_rules.list_rules(
        ctx, sequence_id=sequence_id, limit=limit + 1, after_id=after_id(cursor)
    )
    return paged(rules, limit, rule_out)


@router.get("/automation/rules/{rule_id}", response_model=RuleOut,
            responses=error_responses(401, 404, 422))  # fmt: skip
def get_rule(rule_id: RuleId, _user: ApiUser, ctx: Ctx):
    return rule_out(automation_rules.get_rule(ctx, rule_id))


@router.patch("/automation/rules/{rule_id}", response_model=RuleOut,
              responses=error_responses(401, 403, 404, 422))  # fmt: skip
def update_rule(
    body: RulePatch,
    rule_id: RuleId,
    user: ApiAdmin,
    ctx: Ctx,
):
    """`{"enabled": false}` switches a rule off; switched on again, it acts on new events only."""
    changes = body.model_dump(exclude_unset=True)
    return rule_out(automation_rules.update_rule(ctx, user.id, rule_id, changes))


@router.delete("/automation/rules/{rule_id}", status_code=204,
               responses=error_responses(401, 403, 404, 422))  # fmt: skip
def delete_rule(rule_id: RuleId, user: ApiAdmin, ctx: Ctx) -> None:
    automation_rules.delete_rule(ctx, user.id, rule_id)


@router.get("/automation/rules/{rule_id}/runs", response_model=RunPage,
            responses=error_responses(401, 404, 422))  # fmt: skip
def list_runs(
    rule_id: RuleId,
    _user: ApiUser,
    ctx: Ctx,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, description="Older runs than this"),
) -> dict[str, Any]:
    """The run log, newest first: each contact's outcome and error code."""
    found = automation_rules.list_runs(ctx, rule_id, limit=limit + 1, before_id=after_id(cursor))
    return paged(found, limit, automation.describe)
