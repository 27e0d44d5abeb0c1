"""Trying a mailbox's settings without sending anything: "will this mailbox work?"."""

from __future__ import annotations

from cadenza.domain.enums import MailTransport
from cadenza.engine.transports.base import DeliveryOutcome, DeliveryResult
from cadenza.engine.transports.factory import transport_for
from cadenza.store.models import Mailbox


def check_mailbox(mailbox: Mailbox, password: str | None) -> DeliveryResult:
    """SENT when the server accepts a session with these settings; the reply says why not.

    The session is always closed: a check must leave no connection behind on the server,
    and a worker must never pick up one opened with settings it did not load itself.
    """
    if mailbox.transport == MailTransport.CAPTURE:
        return DeliveryResult(DeliveryOutcome.SENT, 250, "capture transport: nothing to connect to")
    transport = transport_for(mailbox, password)
    try:
        return transport.check()
    finally:
        transport.close()
