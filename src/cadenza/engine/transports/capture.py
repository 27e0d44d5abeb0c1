"""The transport for running without a mail server (the embedded default).

The engine already keeps every raw message in its database, so "capturing" is only
saying yes: nothing leaves the machine and nothing is stored twice.
"""

from __future__ import annotations

from cadenza.engine.transports.base import DeliveryOutcome, DeliveryResult


class CaptureTransport:
    def __init__(self) -> None:
        self.count = 0

    def send(self, sender: str, recipients: list[str], message: bytes) -> DeliveryResult:
        self.count += 1
        return DeliveryResult(DeliveryOutcome.SENT, 250, "captured")

    def check(self) -> DeliveryResult:
        """Always passes: there is no server whose settings could be wrong."""
        return DeliveryResult(DeliveryOutcome.SENT, 250, "capture transport: nothing to connect to")

    def close(self) -> None:
        pass

    def prepare(self) -> None:
        """Nothing to open."""
