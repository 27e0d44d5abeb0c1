"""The automation runner: reads new automation events and lets each enabled rule act.

Called from the worker's tick. Per rule, one transaction reads the events after the
rule's cursor, acts, writes a run per (rule, event) and moves the cursor — so a
crash repeats the whole step or none of it. The unique (rule, event) key of the run
log makes a trigger seen twice act once even so (a second runner, a replay).

Loops: an action's own changes (enrolled, unenrolled) are events too. They carry the
depth of their cause plus one and the chain of rule ids behind them; a rule never
acts on an event its own action caused (its id is in the chain), and nothing acts on
an event deeper than MAX_DEPTH. Both are logged as skipped runs.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadenza.domain import filters
from cadenza.domain.enums import (
    LIVE_ENROLLMENT_STATES,
    AutomationOutcome,
    AutomationTrigger,
    EnrollmentState,
    UnenrollReason,
)
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.access import may_act_for
from cadenza.services.context import Context
from cadenza.services.crm import membership
from cadenza.services.enrollment.control import end_enrollment
from cadenza.services.enrollment.enroll import (
    ContactRequest,
    EnrollRequest,
    daily_limit_resets_at,
    enroll_in,
)
from cadenza.services.events_out import triggers
from cadenza.services.lookup import fetch
from cadenza.store.models import (
    AutomationEvent,
    AutomationRule,
    AutomationRun,
    Contact,
    Enrollment,
    User,
)

MAX_DEPTH = 5
EVENTS_PER_PASS = 500
# Trigger types named after the unenroll reason they wait for.
REASON_TRIGGERS = {
    AutomationTrigger.REPLIED: UnenrollReason.REPLIED,
    AutomationTrigger.MEETING_BOOKED: UnenrollReason.MEETING_BOOKED,
    AutomationTrigger.BOUNCED: UnenrollReason.BOUNCED,
}


def run_pending(ctx: Context) -> int:
    """One pass over every enabled rule; returns how many events were looked at."""
    now = ctx.clock.now()
    with ctx.db.read() as session:  # the write lock only for rules with work to do
        rule_ids = [
            rule.id
            for rule in session.scalars(
                select(AutomationRule)
                .where(AutomationRule.enabled.is_(True))
                .order_by(AutomationRule.id)
            )
            if (rule.resume_at is None or rule.resume_at <= now) and _has_events(session, rule)
        ]
    return sum(_run_rule(ctx, rule_id, now) for rule_id in rule_ids)


def _has_events(session: Session, rule: AutomationRule) -> bool:
    return (
        session.scalar(
            select(AutomationEvent.id)
            .where(
                AutomationEvent.id > rule.cursor,
                AutomationEvent.type == triggers.TRIGGER_EVENTS[rule.trigger["type"]],
            )
            .limit(1)
        )
        is not None
    )


def _run_rule(ctx: Context, rule_id: int, now: datetime) -> int:
    with ctx.db.transaction() as session:
        rule = session.get(AutomationRule, rule_id, with_for_update=True)
        if rule is None or not rule.enabled or (rule.resume_at and rule.resume_at > now):
            return 0
        rule.resume_at = None
        events = list(
            session.scalars(
                select(AutomationEvent)
                .where(
                    AutomationEvent.id > rule.cursor,
                    AutomationEvent.type == triggers.TRIGGER_EVENTS[rule.trigger["type"]],
                )
                .order_by(AutomationEvent.id)
                .limit(EVENTS_PER_PASS)
            )
        )
        if not events:
            return 0
        done = set(
            session.scalars(
                select(AutomationRun.event_id).where(
                    AutomationRun.rule_id == rule.id,
                    AutomationRun.event_id.in_([e.id for e in events]),
                )
            )
        )
        log = RunLog(session, rule, now)
        candidates = []
        for event in events:
            if event.id in done or event.contact_id is None or not trigger_matches(rule, event):
                continue
            if rule.id in (event.chain or []):
                log.add(
                    event,
                    AutomationOutcome.SKIPPED,
                    "loop_prevented",
                    "caused by this rule's own action",
                )
            elif event.depth >= MAX_DEPTH:
                log.add(
                    event,
                    AutomationOutcome.SKIPPED,
                    "depth_limit",
                    f"{event.depth} automations deep",
                )
            else:
                candidates.append(event)
        candidates = _meeting_conditions(session, rule, candidates, log, now)
        if rule.action["type"] == "enroll":
            held_back = _enroll(ctx, session, rule, candidates, log)
        else:
            held_back = []
            for event in candidates:
                _unenroll(ctx, session, rule, event, log)
        # Held back by the daily limit: the cursor stays before the first of them (the
        # ones after it that did act have their run, so they are not acted on again).
        rule.cursor = min(held_back) - 1 if held_back else events[-1].id
        return len(events)


class RunLog:
    """Collects the run rows of one pass; each (rule, event) gets exactly one."""

    def __init__(self, session: Session, rule: AutomationRule, now: datetime) -> None:
        self.session, self.rule, self.now = session, rule, now

    def add(
        self,
        event: AutomationEvent,
        outcome: AutomationOutcome,
        code: str | None = None,
        message: str | None = None,
        enrollment_id: int | None = None,
    ) -> None:
        self.session.add(
            AutomationRun(
                rule_id=self.rule.id,
                event_id=event.id,
                contact_id=event.contact_id,
                outcome=outcome,
                code=code,
                message=message,
                enrollment_id=enrollment_id,
                at=self.now,
            )
        )


def trigger_matches(rule: AutomationRule, event: AutomationEvent) -> bool:
    trigger, data = rule.trigger, event.data or {}
    kind = trigger["type"]
    if kind == AutomationTrigger.PROPERTY_CHANGED:
        if data.get("property") != trigger["property"]:
            return False
        wanted = trigger.get("value")
        new = data.get("new")
        return wanted is None or (new is not None and filters.equal(new, wanted))
    if kind in (AutomationTrigger.LIST_ADDED, AutomationTrigger.LIST_REMOVED):
        return data.get("list_id") == trigger["list_id"]
    if trigger.get("sequence_id") is not None and data.get("sequence_id") != trigger["sequence_id"]:
        return False
    if kind == AutomationTrigger.ENROLLMENT_FINISHED:
        return data.get("state") == EnrollmentState.FINISHED
    if kind == AutomationTrigger.UNENROLLED:
        return data.get("state") == EnrollmentState.UNENROLLED and trigger.get("reason") in (
            None,
            data.get("reason"),
        )
    if kind in REASON_TRIGGERS:
        return (
            data.get("state") == EnrollmentState.UNENROLLED
            and data.get("reason") == REASON_TRIGGERS[kind]
        )
    return True  # contact_created, enrolled


def _meeting_conditions(
    session: Session, rule: AutomationRule, events: list, log: RunLog, now: datetime
) -> list[AutomationEvent]:
    if not rule.conditions or not events:
        return events
    contacts = list(
        session.scalars(select(Contact).where(Contact.id.in_({e.contact_id for e in events})))
    )
    facts = membership.facts_for(session, contacts, filters.object_types_used(rule.conditions))
    kept = []
    for event in events:
        fact = facts.get(event.contact_id)
        if fact is not None and filters.matches(rule.conditions, fact, now):
            kept.append(event)
        else:
            log.add(
                event,
                AutomationOutcome.SKIPPED,
                "conditions_not_met",
                "the rule's conditions do not hold",
            )
    return kept


def _put_there_by_permitted(
    session: Session, user_id: int, events: list, log: RunLog
) -> list[AutomationEvent]:
    """A rule sends from its named user's mailbox: contacts someone else put on the list
    it watches are enrolled only if that someone may act for the named user."""
    kept = []
    for event in events:
        if may_act_for(session, (event.data or {}).get("by"), user_id):
            kept.append(event)
        else:
            log.add(
                event, AutomationOutcome.SKIPPED, "permission_denied",
                "added to the list by a user who may not send as the rule's user",
            )  # fmt: skip
    return kept


def _enroll(
    ctx: Context, session: Session, rule: AutomationRule, events: list, log: RunLog
) -> list[int]:
    """Enrolls in batches of the bulk limit, as the rule's user. Returns the ids of the
    events held back by the user's daily limit (the rule then waits for midnight)."""
    action = rule.action
    batches: dict[tuple, list[list[AutomationEvent]]] = defaultdict(list)
    permitted = _put_there_by_permitted(session, action["user_id"], events, log)
    for event in permitted:  # one cause per batch, so the events it writes carry it exactly
        groups = batches[(event.depth, tuple(event.chain or []))]
        if (
            not groups
            or len(groups[-1]) >= ctx.settings.enroll_bulk_limit
            or event.contact_id in {e.contact_id for e in groups[-1]}
        ):
            groups.append([])
        groups[-1].append(event)
    ordered = sorted((b for groups in batches.values() for b in groups), key=lambda b: b[0].id)
    for index, batch in enumerate(ordered):
        request = EnrollRequest(
            sequence_id=rule.sequence_id,
            user_id=action["user_id"],
            contacts=[ContactRequest(contact_id=e.contact_id) for e in batch],
            mailbox_id=action.get("mailbox_id"),
            start_step=action.get("start_step", 1),
            timezone=action.get("timezone"),
        )
        try:
            with session.begin_nested(), triggers.acting_for(session, batch[0], rule.id):
                results = enroll_in(session, ctx, request)
        except CadenzaError as exc:
            for event in batch:
                log.add(event, AutomationOutcome.FAILED, str(exc.code), exc.message)
            continue
        for position, (event, result) in enumerate(zip(batch, results, strict=True)):
            if result.code == ErrorCode.DAILY_ENROLLMENT_LIMIT:
                user = fetch(session, User, action["user_id"])
                rule.resume_at = daily_limit_resets_at(ctx, user, log.now)
                rest = batch[position:] + [e for b in ordered[index + 1 :] for e in b]
                return [e.id for e in rest]
            if result.ok:
                log.add(event, AutomationOutcome.ENROLLED, enrollment_id=result.enrollment_id)
            else:
                log.add(event, AutomationOutcome.REFUSED, result.code, result.message)
    return []


def _unenroll(
    ctx: Context, session: Session, rule: AutomationRule, event: AutomationEvent, log: RunLog
) -> None:
    query = select(Enrollment).where(
        Enrollment.contact_id == event.contact_id,
        Enrollment.state.in_(LIVE_ENROLLMENT_STATES),
    )
    if rule.action["scope"] == "this":
        query = query.where(Enrollment.sequence_id == rule.sequence_id)
    live = list(session.scalars(query.with_for_update()))
    if not live:
        log.add(event, AutomationOutcome.SKIPPED, "not_enrolled", "no live enrollment to end")
        return
    with triggers.acting_for(session, event, rule.id):
        for enrollment in live:
            end_enrollment(
                session, ctx, enrollment, UnenrollReason.AUTOMATION, f"rule {rule.id}: {rule.name}"
            )
    log.add(event, AutomationOutcome.UNENROLLED, message=f"{len(live)} enrollment(s) ended")


def describe(run: AutomationRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "rule_id": run.rule_id,
        "event_id": run.event_id,
        "contact_id": run.contact_id,
        "outcome": run.outcome,
        "code": run.code,
        "message": run.message,
        "enrollment_id": run.enrollment_id,
        "at": run.at,
    }
