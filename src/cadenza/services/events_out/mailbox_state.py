"""The one way a mailbox stops sending: disconnected with the reason, audited, and
reported to the webhooks (`mailbox.disconnected`).

Every cause goes through here in the caller's transaction — credentials or the mailbox
itself refused at hand-over (delivery.handover, the circuit breaker of
docs/mailboxes.md), a refused OAuth token renewal (oauth.tokens) — so a team's
integration hears of each the same way, once per disconnection.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from cadenza.domain.enums import WebhookEvent
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.events_out import webhooks
from cadenza.store.models import Mailbox


def mark_disconnected(
    session: Session, ctx: Context, mailbox: Mailbox, reason: str | None, now: datetime
) -> bool:
    """False when it already was disconnected: the newer reason is kept, nothing is
    reported twice. The caller holds the mailbox's row lock."""
    if not mailbox.connected:
        mailbox.disconnected_reason = reason
        return False
    mailbox.connected, mailbox.disconnected_reason = False, reason
    data = {
        "mailbox_id": mailbox.id,
        "owner_id": mailbox.owner_id,
        "from_email": mailbox.from_email,
        "provider": mailbox.oauth_provider,
        "reason": reason,
    }
    webhooks.emit(session, now, WebhookEvent.MAILBOX_DISCONNECTED, data)
    record(session, ctx, None, "mailbox.disconnect", "mailbox", mailbox.id, {"reason": reason})
    return True
