"""The webhook dispatcher: POSTs due deliveries from its own thread, never the engine's.

Each POST goes to the address that was checked: the URL's host is resolved once,
every address it has is judged (services/outbound.py: no loopback, private, link-local
or metadata address unless allow-listed), and the request is sent to that IP with the
original name in the Host header and in TLS SNI and certificate checks — no second
lookup that a rebinding DNS server could answer differently.

At least once: a dispatcher that dies between a receiver's answer and recording it
leaves the delivery leased; when the lease ends another one sends it again, with the
same event id, which receivers use to ignore the repeat.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from urllib.parse import urlsplit

import httpx

from cadenza import __version__
from cadenza.domain import webhooks as rules
from cadenza.domain.enums import WebhookDeliveryStatus
from cadenza.domain.errors import CadenzaError
from cadenza.engine.metrics import EngineMetrics
from cadenza.services import outbound
from cadenza.services.context import Context
from cadenza.services.events_out import webhooks

log = logging.getLogger("cadenza.webhooks")

TIMEOUT_SECONDS = 10.0
# What an attempt came to, as /metrics counts it: a delivery still pending will retry.
ATTEMPT_OUTCOMES = {
    WebhookDeliveryStatus.DELIVERED: "delivered",
    WebhookDeliveryStatus.PENDING: "retry",
    WebhookDeliveryStatus.FAILED: "failed",
}


class WebhookDispatcher:
    def __init__(
        self,
        ctx: Context,
        *,
        poll_interval: float = 1.0,
        batch_size: int = 50,
        resolver: outbound.Resolver | None = None,
        metrics: EngineMetrics | None = None,
    ) -> None:
        self.ctx = ctx
        self.metrics = metrics or EngineMetrics()  # the worker's, when it starts us
        self.resolver = resolver  # None: the system's (hosts file, then DNS)
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
        # With the starter's log context (its worker id): a new thread starts with none.
        self._thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self.run,),
            name="cadenza-webhooks",
            daemon=True,
        )
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
            url, extensions = self._pinned(delivery.url, headers)
            response = self._client.post(
                url, content=delivery.body, headers=headers, extensions=extensions
            )
            status_code = response.status_code
            if not response.is_success:
                error = response.text[: rules.EXCERPT * 4]
        except CadenzaError as exc:  # the host resolves inside: refused, never connected
            error = f"refused: {exc.message}"
        except outbound.Unresolvable as exc:
            error = f"DNS: {exc}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        duration_ms = int((time.monotonic() - started) * 1000)
        outcome = webhooks.record_attempt(
            self.ctx, delivery.id, status_code=status_code, error=error, duration_ms=duration_ms
        )
        counted = ATTEMPT_OUTCOMES.get(outcome, "deleted") if outcome else "deleted"
        self.metrics.webhook_attempts.labels(counted).inc()
        log.info(
            "webhook %s %s → %s (%s)", delivery.event_type, delivery.event_id,
            status_code or rules.excerpt(error or ""), outcome or "deleted",
            extra={"webhook_delivery_id": delivery.id, "outcome": counted},
        )  # fmt: skip

    def _pinned(self, url: str, headers: dict[str, str]) -> tuple[httpx.URL, dict]:
        """The URL with its host replaced by the checked address; Host and SNI keep the name."""
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = outbound.webhook_target(
            parts.hostname, port, webhooks.allow_list(self.ctx), self.resolver
        )
        headers["Host"] = parts.netloc.rpartition("@")[2]
        extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
        return httpx.URL(url).copy_with(host=target.address), extensions
