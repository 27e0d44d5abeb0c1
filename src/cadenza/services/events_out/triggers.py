"""Automation events: written in the transaction of the change that caused them.

`record` sits next to `webhooks.emit` in every place a change happens (contact
created/updated, list membership, enrolled, enrollment ended). It writes an event only
when some enabled rule listens for its type, so a system without rules pays one small
read per change. The automation runner (services/automation/runner.py) reads them later, in
the worker, so a rule's action never slows down the change that triggered it.

Causality: when a rule's action changes something, the runner puts the rule's cause on
the session (`acting_for`); every event written in that session carries depth + 1 and
the chain of rule ids that led to it (see AutomationEvent and docs/records.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.orm import Session

from cadenza.domain.enums import AutomationEventType, AutomationTrigger
from cadenza.services.events_out.listeners import listeners
from cadenza.store.models import AutomationEvent

CAUSE_KEY = "cadenza.automation_cause"

# Which event each trigger type is read from.
TRIGGER_EVENTS = {
    AutomationTrigger.CONTACT_CREATED: AutomationEventType.CONTACT_CREATED,
    AutomationTrigger.PROPERTY_CHANGED: AutomationEventType.PROPERTY_CHANGED,
    AutomationTrigger.LIST_ADDED: AutomationEventType.LIST_ADDED,
    AutomationTrigger.LIST_REMOVED: AutomationEventType.LIST_REMOVED,
    AutomationTrigger.ENROLLED: AutomationEventType.ENROLLED,
    AutomationTrigger.ENROLLMENT_FINISHED: AutomationEventType.ENROLLMENT_ENDED,
    AutomationTrigger.UNENROLLED: AutomationEventType.ENROLLMENT_ENDED,
    AutomationTrigger.REPLIED: AutomationEventType.ENROLLMENT_ENDED,
    AutomationTrigger.MEETING_BOOKED: AutomationEventType.ENROLLMENT_ENDED,
    AutomationTrigger.BOUNCED: AutomationEventType.ENROLLMENT_ENDED,
}

_TRIGGERS = {str(trigger) for trigger in AutomationTrigger}


def _connection(session: Session | Connection) -> Connection:
    return session.connection() if isinstance(session, Session) else session


def _info(session: Session | Connection) -> dict:
    return session.info


def listened_types(session: Session | Connection) -> set[str]:
    connection = _connection(session)
    rows = listeners(connection).rule_triggers
    return {str(TRIGGER_EVENTS[AutomationTrigger(t)]) for t in rows if t in _TRIGGERS}


def record(
    session: Session | Connection,
    now: datetime,
    event_type: AutomationEventType,
    contact_id: int | None,
    data: dict[str, Any],
) -> None:
    record_many(session, now, [(event_type, contact_id, data)])


def record_many(
    session: Session | Connection,
    now: datetime,
    events: list[tuple[AutomationEventType, int | None, dict[str, Any]]],
) -> None:
    if not events:
        return
    wanted = listened_types(session)
    rows = [e for e in events if e[0] in wanted]
    if not rows:
        return
    depth, chain = _info(session).get(CAUSE_KEY, (0, []))
    _connection(session).execute(
        insert(AutomationEvent),
        [
            {
                "type": event_type,
                "contact_id": contact_id,
                "data": data,
                "depth": depth,
                "chain": list(chain),
                "occurred_at": now,
            }
            for event_type, contact_id, data in rows
        ],
    )


@contextmanager
def acting_for(session: Session, event: AutomationEvent, rule_id: int) -> Iterator[None]:
    """Events written inside are caused by `rule_id` acting on `event`."""
    previous = session.info.get(CAUSE_KEY)
    session.info[CAUSE_KEY] = (event.depth + 1, [*(event.chain or []), rule_id])
    try:
        yield
    finally:
        if previous is None:
            session.info.pop(CAUSE_KEY, None)
        else:
            session.info[CAUSE_KEY] = previous


def enrollment_ended(session: Session | Connection, now: datetime, enrollment, **extra) -> None:
    """Finished or unenrolled (with its reason): the one event enrollment triggers read."""
    record(
        session,
        now,
        AutomationEventType.ENROLLMENT_ENDED,
        enrollment.contact_id if not isinstance(enrollment, dict) else enrollment["contact_id"],
        _ended_data(enrollment, **extra),
    )


def _ended_data(enrollment, **extra) -> dict[str, Any]:
    if isinstance(enrollment, dict):
        return {**enrollment, **extra}
    return {
        "enrollment_id": enrollment.id,
        "sequence_id": enrollment.sequence_id,
        "state": enrollment.state,
        "reason": enrollment.reason,
        **extra,
    }
