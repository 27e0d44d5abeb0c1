"""Automation rules: defined by admins, switched on and off, with their run log.

A rule is a trigger, optional conditions (the list filter language) and an action:

    trigger:    {"type": "contact_created"}
                {"type": "property_changed", "property": "plan", "value": "pro"}  (value optional)
                {"type": "list_added" | "list_removed", "list_id": 3}
                {"type": "enrolled" | "enrollment_finished" | "replied" | "meeting_booked"
                         | "bounced", "sequence_id": 7}                          (sequence optional)
                {"type": "unenrolled", "sequence_id": 7, "reason": "manual"}    (both optional)
    action:     {"type": "enroll", "user_id": 2, "mailbox_id": 4, "start_step": 1,
                 "timezone": null}                       (into the rule's sequence)
                {"type": "unenroll", "scope": "this" | "all"}

Rules act as the user they name: that user's enroll permission, mailboxes and daily
limit apply exactly as when the user enrolls by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadenza.domain.contact_fields import parse_timezone
from cadenza.domain.enums import AutomationTrigger, UnenrollReason
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.ids import is_row_id
from cadenza.domain.policy import Action, Resource
from cadenza.services.access import authorize, authorize_enrolling
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.crm import lists
from cadenza.services.lookup import fetch
from cadenza.services.read_models import copy_row
from cadenza.services.sequences.catalog import load_live_sequence, load_sequence
from cadenza.store.models import (
    AutomationEvent,
    AutomationRule,
    AutomationRun,
    Mailbox,
    User,
)


@dataclass(frozen=True)
class RuleView:
    """An automation rule as the API, its page and the CLI show it."""

    id: int
    name: str
    sequence_id: int | None
    trigger: dict[str, Any]
    conditions: dict[str, Any] | None
    action: dict[str, Any]
    enabled: bool
    cursor: int
    resume_at: datetime | None
    created_by_id: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: AutomationRule) -> RuleView:
        return copy_row(cls, row)


@dataclass(frozen=True)
class RunView:
    """What a rule did for one event, as its run log shows it."""

    id: int
    rule_id: int
    event_id: int
    contact_id: int | None
    outcome: str
    code: str | None
    message: str | None
    enrollment_id: int | None
    at: datetime


SEQUENCE_TRIGGERS = {
    AutomationTrigger.ENROLLED,
    AutomationTrigger.ENROLLMENT_FINISHED,
    AutomationTrigger.UNENROLLED,
    AutomationTrigger.REPLIED,
    AutomationTrigger.MEETING_BOOKED,
    AutomationTrigger.BOUNCED,
}
# Why an enrollment can end early: a person's reasons, the signals', and a rule's own.
ENDING_REASONS = tuple(UnenrollReason)
TRIGGER_KEYS = {
    AutomationTrigger.CONTACT_CREATED: set(),
    AutomationTrigger.PROPERTY_CHANGED: {"property", "value"},
    AutomationTrigger.LIST_ADDED: {"list_id"},
    AutomationTrigger.LIST_REMOVED: {"list_id"},
    AutomationTrigger.UNENROLLED: {"sequence_id", "reason"},
    **{t: {"sequence_id"} for t in SEQUENCE_TRIGGERS - {AutomationTrigger.UNENROLLED}},
}
ACTION_KEYS = {
    "enroll": {"user_id", "mailbox_id", "start_step", "timezone"},
    "unenroll": {"scope"},
}


def _invalid(message: str, field: str) -> CadenzaError:
    return CadenzaError(ErrorCode.VALIDATION_ERROR, message, {"field": field})


def check_trigger(session: Session, trigger: Any) -> dict[str, Any]:
    if not isinstance(trigger, dict) or trigger.get("type") not in TRIGGER_KEYS:
        raise _invalid(f"trigger.type must be one of {', '.join(TRIGGER_KEYS)}", "trigger.type")
    kind = trigger["type"]
    unknown = set(trigger) - {"type"} - TRIGGER_KEYS[kind]
    if unknown:
        raise _invalid(f"{kind} triggers take no {', '.join(sorted(unknown))}", "trigger")
    if kind == AutomationTrigger.PROPERTY_CHANGED:
        prop = trigger.get("property")
        if not isinstance(prop, str) or not prop or len(prop) > 100:
            raise _invalid("property_changed needs the property name", "trigger.property")
        value = trigger.get("value")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise _invalid("trigger.value must be text, a number or a boolean", "trigger.value")
    if kind in (AutomationTrigger.LIST_ADDED, AutomationTrigger.LIST_REMOVED):
        if not is_row_id(trigger.get("list_id")):
            raise _invalid(f"{kind} needs list_id", "trigger.list_id")
        lists.fetch_list(session, trigger["list_id"])
    if trigger.get("sequence_id") is not None:
        if not is_row_id(trigger["sequence_id"]):
            raise _invalid("trigger.sequence_id must be an id", "trigger.sequence_id")
        load_sequence(session, trigger["sequence_id"])
    if trigger.get("reason") is not None and trigger["reason"] not in ENDING_REASONS:
        raise _invalid(
            f"trigger.reason must be one of {', '.join(ENDING_REASONS)}", "trigger.reason"
        )
    return dict(trigger)


def check_action(session: Session, action: Any, sequence_id: int | None) -> dict[str, Any]:
    if not isinstance(action, dict) or action.get("type") not in ACTION_KEYS:
        raise _invalid("action.type must be enroll or unenroll", "action.type")
    kind = action["type"]
    unknown = set(action) - {"type"} - ACTION_KEYS[kind]
    if unknown:
        raise _invalid(f"{kind} actions take no {', '.join(sorted(unknown))}", "action")
    if kind == "unenroll":
        if action.get("scope") not in ("this", "all"):
            raise _invalid("action.scope must be this or all", "action.scope")
        if action["scope"] == "this" and sequence_id is None:
            raise _invalid(
                "unenroll from this sequence needs the rule's sequence_id", "sequence_id"
            )
        return dict(action)
    if sequence_id is None:
        raise _invalid("an enroll action needs the rule's sequence_id", "sequence_id")
    if not is_row_id(action.get("user_id")):
        raise _invalid("an enroll action names the user it acts as (user_id)", "action.user_id")
    user = fetch(session, User, action["user_id"])
    authorize_enrolling(user, named=True)
    mailbox_id = action.get("mailbox_id")
    if mailbox_id is not None:
        if not is_row_id(mailbox_id):
            raise _invalid("action.mailbox_id must be an id", "action.mailbox_id")
        authorize_enrolling(user, fetch(session, Mailbox, mailbox_id), named=True)
    start = action.get("start_step", 1)
    if isinstance(start, bool) or not isinstance(start, int) or start < 1:
        raise _invalid("action.start_step must be a step number", "action.start_step")
    if action.get("timezone") is not None:
        parse_timezone(action["timezone"])
    return {"type": "enroll", "user_id": user.id, "mailbox_id": mailbox_id,
            "start_step": start, "timezone": action.get("timezone")}  # fmt: skip


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or "\x00" in name:
        raise _invalid("name must be 1 to 200 characters", "name")
    return name.strip()


def _newest_event(session: Session) -> int:
    return session.scalar(select(func.max(AutomationEvent.id))) or 0


def create_rule(
    ctx: Context,
    actor_id: int | None,
    *,
    name: str,
    sequence_id: int | None,
    trigger: dict,
    action: dict,
    conditions: dict | None = None,
    enabled: bool = True,
) -> RuleView:
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.AUTOMATION_RULE, Action.CREATE)
        if sequence_id is not None:
            load_live_sequence(session, sequence_id)
        rule = AutomationRule(
            name=_check_name(name),
            sequence_id=sequence_id,
            trigger=check_trigger(session, trigger),
            conditions=lists.check_filters(session, conditions) if conditions else None,
            action=check_action(session, action, sequence_id),
            enabled=bool(enabled),
            # A rule acts on what happens after it is switched on, never on the past.
            cursor=_newest_event(session),
            created_by_id=actor_id,
            created_at=now,
            updated_at=now,
        )
        session.add(rule)
        session.flush()
        record(session, ctx, actor_id, "rule.create", "automation_rule", rule.id)
        return RuleView.of(rule)


def update_rule(ctx: Context, actor_id: int | None, rule_id: int, changes: dict) -> RuleView:
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.AUTOMATION_RULE, Action.UPDATE)
        rule = fetch_rule(session, rule_id, for_update=True)
        if "name" in changes:
            rule.name = _check_name(changes["name"])
        if "sequence_id" in changes:
            if changes["sequence_id"] is not None:
                load_live_sequence(session, changes["sequence_id"])
            rule.sequence_id = changes["sequence_id"]
        if "trigger" in changes:
            rule.trigger = check_trigger(session, changes["trigger"])
        if "conditions" in changes:
            rule.conditions = (
                lists.check_filters(session, changes["conditions"])
                if changes["conditions"]
                else None
            )
        if "action" in changes or "sequence_id" in changes:
            action = changes.get("action", rule.action)
            rule.action = check_action(session, action, rule.sequence_id)
        if "enabled" in changes:
            switched_on = bool(changes["enabled"]) and not rule.enabled
            rule.enabled = bool(changes["enabled"])
            if switched_on:
                rule.cursor, rule.resume_at = _newest_event(session), None
        rule.updated_at = ctx.clock.now()
        record(session, ctx, actor_id, "rule.update", "automation_rule", rule_id, sorted(changes))
        return RuleView.of(rule)


def delete_rule(ctx: Context, actor_id: int | None, rule_id: int) -> None:
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.AUTOMATION_RULE, Action.DELETE)
        session.delete(fetch_rule(session, rule_id, for_update=True))
        record(session, ctx, actor_id, "rule.delete", "automation_rule", rule_id)


def fetch_rule(session: Session, rule_id: int, *, for_update: bool = False) -> AutomationRule:
    rule = session.get(AutomationRule, rule_id, with_for_update=for_update or None)
    if rule is None:
        raise CadenzaError(
            ErrorCode.NOT_FOUND, f"automation rule {rule_id} does not exist", {"id": rule_id}
        )
    return rule


def get_rule(ctx: Context, rule_id: int) -> RuleView:
    with ctx.db.read() as session:
        return RuleView.of(fetch_rule(session, rule_id))


def list_rules(
    ctx: Context, *, sequence_id: int | None = None, limit: int = 50, after_id: int | None = None
) -> list[RuleView]:
    with ctx.db.read() as session:
        query = select(AutomationRule).order_by(AutomationRule.id).limit(limit)
        if sequence_id is not None:
            query = query.where(AutomationRule.sequence_id == sequence_id)
        if after_id is not None:
            query = query.where(AutomationRule.id > after_id)
        return [RuleView.of(row) for row in session.scalars(query)]


def list_runs(
    ctx: Context, rule_id: int, *, limit: int = 50, before_id: int | None = None
) -> list[RunView]:
    """The run log, newest first."""
    with ctx.db.read() as session:
        fetch_rule(session, rule_id)
        query = (
            select(AutomationRun)
            .where(AutomationRun.rule_id == rule_id)
            .order_by(AutomationRun.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            query = query.where(AutomationRun.id < before_id)
        return [copy_row(RunView, row) for row in session.scalars(query)]
