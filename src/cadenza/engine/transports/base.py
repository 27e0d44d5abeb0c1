"""What every transport promises: one call per message and an outcome that says what to do next."""

from __future__ import annotations

from typing import Protocol

from cadenza.domain.delivery_outcome import DeliveryOutcome, DeliveryResult

__all__ = ["DeliveryOutcome", "DeliveryResult", "Transport"]


class Transport(Protocol):
    def send(self, sender: str, recipients: list[str], message: bytes) -> DeliveryResult: ...

    def close(self) -> None: ...
