"""What a delivery attempt can come to; the engine's transports report it, services record it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DeliveryOutcome(StrEnum):
    SENT = "sent"  # the server accepted the message
    TRANSIENT = "transient"  # 4xx or a connection problem before the message was handed over
    PERMANENT = "permanent"  # 5xx: retrying will not help
    AUTH_FAILED = "auth_failed"  # credentials refused: the mailbox is disconnected
    UNKNOWN = "unknown"  # the message was handed over but no answer came: never resend


@dataclass(frozen=True)
class DeliveryResult:
    outcome: DeliveryOutcome
    code: int | None
    reply: str
