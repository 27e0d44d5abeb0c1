"""The worker loop: recover dead claims, resume ended out-of-office pauses, create due
tasks, claim and send due emails (task reminders among them).

Everything timed runs from this tick and counts in its next wake-up: nothing waits
for the inbox poller (which only reads mail) to be running.

Each tick claims what is due now (within every mailbox's throttle), then hands the
claimed emails over in slot order, pausing between them as the spacing requires.
Recording finished emails' outcomes and marking the next one as "handing" share a
single commit, so the protocol costs one transaction per email. Each mailbox sends
over its own connection on a sender thread, so mailboxes proceed side by side while
the database work stays on the worker's own thread.
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from datetime import datetime, timedelta

from cadenza import logs
from cadenza.domain.delivery_outcome import DeliveryResult
from cadenza.domain.transport_settings import TransportSettings
from cadenza.engine.metrics import EngineMetrics
from cadenza.engine.transports.base import Transport
from cadenza.engine.transports.factory import transport_for
from cadenza.engine.webhook_dispatch import WebhookDispatcher
from cadenza.services import worker_jobs as jobs
from cadenza.services.context import Context
from cadenza.services.worker_jobs import ClaimedEmail, HandOver

log = logging.getLogger("cadenza.worker")

IDLE_TRANSPORT_SECONDS = 60.0


@dataclass
class WorkerOptions:
    batch_size: int = 200
    lease: timedelta = timedelta(minutes=5)
    # How far ahead a tick grants send slots; the worker waits for each slot itself.
    horizon: timedelta = timedelta(seconds=2)
    poll_interval: float = 1.0
    # Mailboxes sending at the same time, each over its own connection.
    connections: int = 8
    # Webhook deliveries go out from a thread of their own while the worker runs.
    webhooks: bool = True


class Worker:
    def __init__(
        self,
        ctx: Context,
        options: WorkerOptions | None = None,
        worker_id: str | None = None,
        metrics: EngineMetrics | None = None,
    ) -> None:
        self.ctx = ctx
        self.options = options or WorkerOptions()
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        # Counted here, reported through the heartbeat (engine/metrics.py); the inbox
        # poller and the webhook dispatcher of this process count into it too.
        self.metrics = metrics or EngineMetrics()
        self.started_at = ctx.clock.now()
        self._last_beat: datetime | None = None
        self.stop_event = threading.Event()
        self.sent = 0  # messages handed over by this worker (for logs and tests)
        self._transports: dict[int, tuple[TransportSettings, Transport, float]] = {}
        self._executor: ThreadPoolExecutor | None = None

    # -- the loop -------------------------------------------------------------------

    def tick(self) -> int:
        """One pass; returns how many step runs it moved (0 means nothing was due)."""
        with logs.bound(worker_id=self.id):  # every record of the tick names the worker
            return self._tick()

    def _tick(self) -> int:
        opts = self.options
        started = time.perf_counter()
        moved, resumed = jobs.run_clocked_jobs(self.ctx, opts.batch_size)
        if resumed:
            log.info("resumed after out-of-office: enrollments %s", resumed)
        claiming = time.perf_counter()
        due = jobs.claim_due(
            self.ctx, self.id, batch_size=opts.batch_size, horizon=opts.horizon, lease=opts.lease
        )
        self.metrics.claims.observe(time.perf_counter() - claiming)
        for mailbox_id in {c.mailbox_id for c in due}:
            self._open_transport(mailbox_id)
        self._hand_over(due)
        self._close_idle_transports()
        self.metrics.ticks.observe(time.perf_counter() - started)
        self._heartbeat()
        return moved + len(due)

    def _heartbeat(self) -> None:
        """At most every HEARTBEAT_SECONDS (on the worker's clock): the last tick and
        this worker's metrics, for /readyz and /metrics on any host."""
        now = self.ctx.clock.now()
        since = None if self._last_beat is None else (now - self._last_beat).total_seconds()
        if since is None or since >= jobs.HEARTBEAT_SECONDS:
            jobs.heartbeat(self.ctx, self.id, self.started_at, self.metrics.snapshot())
            self._last_beat = now

    def run(self, *, exit_when_idle: bool = False) -> None:
        """Ticks until stopped (SIGTERM sets stop_event); the current email is finished first."""
        with logs.bound(worker_id=self.id):  # the dispatcher's thread inherits it
            self._run(exit_when_idle)

    def _run(self, exit_when_idle: bool) -> None:
        log.info("worker %s started", self.id)
        dispatcher = None
        if self.options.webhooks:
            dispatcher = WebhookDispatcher(self.ctx, metrics=self.metrics)
        if dispatcher is not None:
            dispatcher.start()
        try:
            self._loop(exit_when_idle)
        finally:
            if dispatcher is not None:
                dispatcher.stop()
        self.close()
        log.info("worker %s stopped after handing over %d emails", self.id, self.sent)

    def _loop(self, exit_when_idle: bool) -> None:
        while not self.stop_event.is_set():
            if self.tick() == 0:
                if exit_when_idle and not self._has_due_work():
                    break
                self.ctx.clock.wait(self.options.poll_interval, self.stop_event)

    def run_until(self, deadline: datetime) -> None:
        """For tests and simulations on a FrozenClock: jumps from one due time to the next."""
        while True:
            if self.tick():
                continue
            upcoming = self.next_wakeup()
            if upcoming is None or upcoming > deadline:
                self.ctx.clock.set(max(deadline, self.ctx.clock.now()))
                return
            self.ctx.clock.set(upcoming)

    def next_wakeup(self) -> datetime | None:
        """The next moment a tick has something to do (services/worker_jobs.py)."""
        return jobs.next_wakeup(self.ctx)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for _, transport, _ in self._transports.values():
            transport.close()
        self._transports.clear()

    # -- sending --------------------------------------------------------------------

    def _hand_over(self, batch: list[ClaimedEmail]) -> None:
        """Sends each mailbox's emails in slot order, mailboxes side by side.

        Each mailbox sends over its own connection on a sender thread, one email at a
        time, so a server's round trip overlaps the next email's hand-over commit for
        another mailbox. Only emails actually being transmitted are in the "handing"
        state, so a crash leaves at most one `unknown` per mailbox. Across mailboxes
        there is no order to keep; the idle mailbox with the earliest slot goes next.
        """
        queues: dict[int, deque[ClaimedEmail]] = {}
        for claim in batch:
            queues.setdefault(claim.mailbox_id, deque()).append(claim)
        sending: dict[int, tuple[ClaimedEmail, Future]] = {}
        finished: list[tuple[ClaimedEmail, DeliveryResult]] = []
        while queues and not self.stop_event.is_set():
            idle = [m for m in queues if m not in sending]
            if not idle or len(sending) >= self.options.connections:
                finished += self._drain(sending, first_only=True)
                continue
            mailbox_id = min(idle, key=lambda m: queues[m][0].slot)
            claim = queues[mailbox_id][0]
            wait = (claim.slot - self.ctx.clock.now()).total_seconds()
            if wait > 0:
                if sending:  # a busy mailbox may free up before this slot comes
                    finished += self._drain(sending, first_only=True)
                else:
                    self.ctx.clock.wait(wait, self.stop_event)
                continue
            finished += self._drain(sending, ready_only=True)
            with logs.bound(**_ids(claim)):
                step = jobs.hand_over(self.ctx, claim, self.id, finished)
                finished = []
                while step is HandOver.WAIT and not self.stop_event.is_set():
                    self.ctx.clock.wait(claim.spacing.total_seconds() / 10, self.stop_event)
                    step = jobs.hand_over(self.ctx, claim, self.id)
            if step is HandOver.WAIT:
                break  # stopping: this one is released with the rest
            queues[mailbox_id].popleft()
            if not queues[mailbox_id]:
                del queues[mailbox_id]
            if step is HandOver.GO:
                transport = self._transports[claim.mailbox_id][1]
                with logs.bound(**_ids(claim)):  # the sender thread logs with the ids too
                    send = contextvars.copy_context().run
                future = self._senders().submit(
                    send, transport.send, claim.sender, [claim.recipient], claim.raw
                )
                sending[claim.mailbox_id] = (claim, future)
                self.sent += 1
                lateness = (self.ctx.clock.now() - claim.slot).total_seconds()
                self.metrics.lateness.observe(max(lateness, 0.0))
                self.metrics.handed_over.labels(str(claim.mailbox_id)).inc()
        jobs.record_outcomes(self.ctx, finished + self._drain(sending), self.id)
        unsent = [claim for queue in queues.values() for claim in queue]
        if unsent:
            jobs.release_unsent(self.ctx, unsent, self.id)

    def _drain(
        self, sending: dict, *, ready_only: bool = False, first_only: bool = False
    ) -> list[tuple[ClaimedEmail, DeliveryResult]]:
        """Outcomes of sends in flight: all of them, the finished ones, or the first to end."""
        if first_only:
            wait_for({future for _, future in sending.values()}, return_when=FIRST_COMPLETED)
        outcomes = []
        for mailbox_id, (claim, future) in list(sending.items()):
            if (ready_only or first_only) and not future.done():
                continue
            result = future.result()
            outcomes.append((claim, result))
            del sending[mailbox_id]
            self.metrics.results.labels(str(claim.mailbox_id), str(result.outcome)).inc()
            code = f" ({result.code})" if result.code else ""
            extra = {**_ids(claim), "outcome": str(result.outcome)}
            log.info("email handed over: %s%s", result.outcome, code, extra=extra)
        return outcomes

    def _senders(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self.options.connections, thread_name_prefix="cadenza-send"
            )
        return self._executor

    def _open_transport(self, mailbox_id: int) -> None:
        """Keeps one transport (one SMTP connection) per mailbox while it has work; a
        change to the mailbox's settings (host, login, password...) opens a new one."""
        settings = jobs.mailbox_settings(self.ctx, mailbox_id)
        cached = self._transports.get(mailbox_id)
        if cached is not None and cached[0] == settings:
            transport = cached[1]
        else:
            if cached is not None:
                cached[1].close()
            transport = transport_for(settings)
        self._transports[mailbox_id] = (settings, transport, time.monotonic())

    def _close_idle_transports(self) -> None:
        limit = time.monotonic() - IDLE_TRANSPORT_SECONDS
        for mailbox_id, (_, transport, used) in list(self._transports.items()):
            if used < limit:
                transport.close()
                del self._transports[mailbox_id]

    # -- what is left ---------------------------------------------------------------

    def _has_due_work(self) -> bool:
        """Due steps, ended out-of-office pauses, or due webhook deliveries (the
        dispatcher thread is sending them)."""
        return jobs.has_due_work(self.ctx, webhooks_too=self.options.webhooks)


def _ids(claim: ClaimedEmail) -> dict[str, int | None]:
    """What a log record about this email names (cadenza/logs.py)."""
    return {
        "mailbox_id": claim.mailbox_id,
        "enrollment_id": claim.enrollment_id,
        "step_run_id": claim.run_id,
        "message_id": claim.message_pk,
    }
