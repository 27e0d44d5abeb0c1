"""Who listens to the changes a transaction makes: the active webhooks and the trigger
types of the enabled automation rules, read together in one statement.

Every change that emits (webhooks.emit) or records an automation event
(triggers.record) asks first whether anyone listens. The worker's hand-over commit
asks for every email it records, and within it (store/read_once.py) the answer is read
once; reading both kinds of listener in one statement makes that one round trip
instead of two per commit (bench/engine.py, on PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, String, cast, literal, null, select, union_all

from cadenza.store.models import AutomationRule, Webhook
from cadenza.store.prepared import Prepared, json_column
from cadenza.store.read_once import once

_WEBHOOK, _RULE = "webhook", "rule"
_LISTENERS = Prepared(
    union_all(
        select(literal(_WEBHOOK), Webhook.id, cast(Webhook.events, String)).where(
            Webhook.active.is_(True)
        ),
        select(literal(_RULE), null(), AutomationRule.trigger["type"].as_string()).where(
            AutomationRule.enabled.is_(True)
        ),
    )
)


@dataclass(frozen=True)
class Listeners:
    webhooks: list[tuple[int, list[str]]]  # each active webhook's id and event types
    rule_triggers: list[str]  # each enabled rule's trigger type


def listeners(connection: Connection) -> Listeners:
    """The listeners as this transaction sees them (once, within `read_once`)."""
    return once(connection, "listeners", lambda: _read(connection))


def _read(connection: Connection) -> Listeners:
    webhooks: list[tuple[int, list[str]]] = []
    rules: list[str] = []
    for kind, webhook_id, value in _LISTENERS.run(connection).fetchall():
        if kind == _WEBHOOK:
            webhooks.append((webhook_id, _events(value)))
        else:
            rules.append(value)
    return Listeners(webhooks, rules)


def _events(stored: Any) -> list[str]:
    return list(json_column(stored) or [])
