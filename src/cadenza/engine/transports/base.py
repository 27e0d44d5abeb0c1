"""What every transport promises: one call per message and an outcome that says what to do next.

The protocol lists everything a caller may use, so a new transport (or a test double)
is complete when it has these four: the worker sends, prepares and closes, a
connection test checks and closes. A transport is built from a plain settings value
(factory.py), never from a stored mailbox.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cadenza.domain.delivery_outcome import DeliveryOutcome, DeliveryResult

__all__ = ["DeliveryOutcome", "DeliveryResult", "Transport"]


@runtime_checkable
class Transport(Protocol):
    def send(self, sender: str, recipients: list[str], message: bytes) -> DeliveryResult:
        """Hands one message over; the outcome says whether a retry is safe."""
        ...

    def check(self) -> DeliveryResult:
        """Tries the settings without sending anything: SENT when a session is accepted."""
        ...

    def close(self) -> None:
        """Ends any session; never raises (called on shutdown and after a check)."""
        ...

    def prepare(self) -> None:
        """Opens the session the next send would open, ahead of it; sends nothing and
        never raises: a failure is left for that send to meet and report."""
        ...
