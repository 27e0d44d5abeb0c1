"""The webhook dispatcher: POSTs due deliveries from its own thread, never the engine's.

At least once: a dispatcher that dies between a receiver's answer and recording it
leaves the delivery leased; when the lease ends another one sends it again, with the
same event id, which receivers use to ignore the repeat.
"""

from __future__ import annotations

import logging
import threading
import time

import httpx

from cadenza import __version__
from cadenza.domain import webhooks as rules
from cadenza.services import webhooks
from cadenza.services.context import Context

log = logging.getLogger("cadenza.webhooks")

TIMEOUT_SECONDS = 10.0


class WebhookDispatcher:
    def __init__(self, ctx: Context, *, poll_interval: float = 1.0, batch_size: int = 50) -> None:
        self.ctx = ctx
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.stop_event = threading.Event()
        self._client = httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False)
        self._thread: threading.Thread | None = None

    def tick(self) -> int:
        """Sends what is due now; returns how many deliveries it tried."""
        due = webhooks.claim_due(self.ctx, self.batch_size)
        for delivery in due:
            if self.stop_event.is_set():
                break  # the rest keep their lease and go out after it ends
            self._post(delivery)
        return len(due)

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                busy = self.tick()
            except Exception:  # a database hiccup must not end webhook delivery for good
                log.exception("webhook dispatch failed; trying again")
                busy = 0
            if not busy:
                self.ctx.clock.wait(self.poll_interval, self.stop_event)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="cadenza-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT_SECONDS + 5)
            self._thread = None
        self._client.close()

    def _post(self, delivery: webhooks.DueDelivery) -> None:
        timestamp = int(self.ctx.clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"Cadenza-Webhooks/{__version__}",
            "Cadenza-Event": delivery.event_type,
            "Cadenza-Delivery": delivery.event_id,
            "Cadenza-Attempt": str(delivery.attempt),
            rules.SIGNATURE_HEADER: rules.sign(delivery.secret, timestamp, delivery.body),
        }
        started = time.monotonic()
        status_code, error = None, None
        try:
            response = self._client.post(delivery.url, content=delivery.body, headers=headers)
            status_code = response.status_code
            if not response.is_success:
                error = response.text[:200]
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        duration_ms = int((time.monotonic() - started) * 1000)
        outcome = webhooks.record_attempt(
            self.ctx, delivery.id, status_code=status_code, error=error, duration_ms=duration_ms
        )
        log.info(
            "webhook %s %s → %s (%s)", delivery.event_type, delivery.event_id,
            status_code or error, outcome,
        )  # fmt: skip
