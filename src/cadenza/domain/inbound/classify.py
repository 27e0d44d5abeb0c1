"""What one received message is, before we know whom it concerns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from cadenza.domain.inbound.autoreply import is_auto_reply, return_date
from cadenza.domain.inbound.bounce import Bounce, detect_bounce
from cadenza.domain.inbound.parse import Inbound


class InboundKind(StrEnum):
    BOUNCE = "bounce"
    AUTO_REPLY = "auto_reply"
    # Written by a person: a reply if it matches something we sent, else unrelated.
    MESSAGE = "message"


@dataclass(frozen=True)
class Classification:
    kind: InboundKind
    bounce: Bounce | None = None
    return_date: date | None = None


def classify(inbound: Inbound, received: date) -> Classification:
    """Bounces first (they carry Auto-Submitted too), then auto-replies, then the rest."""
    bounce = detect_bounce(inbound)
    if bounce is not None:
        return Classification(InboundKind.BOUNCE, bounce=bounce)
    if is_auto_reply(inbound):
        back = return_date(f"{inbound.subject}\n{inbound.text}", received)
        return Classification(InboundKind.AUTO_REPLY, return_date=back)
    return Classification(InboundKind.MESSAGE)
