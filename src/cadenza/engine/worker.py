"""The worker loop: recover dead claims, resume ended out-of-office pauses, create due
tasks, claim and send due emails (task reminders among them).

Everything timed runs from this loop and counts in its next wake-up: nothing waits
for the inbox poller (which only reads mail) to be running.

A claim round takes what is due by the horizon (within every mailbox's throttle, slots
up to the horizon ahead, none before its email is due); the claimed emails are handed
over as their slots come (engine/sends.py), each mailbox over its own connection,
thousands side by side. A running worker claims again every half horizon while
earlier emails are still waiting or in flight, so slots are granted before they come
and a server's slow answer delays nothing but its own mailbox. On PostgreSQL its claim
rounds run on a thread of their own, beside the hand-overs (`_loop_beside`,
docs/engine.md). `tick()` is one round taken to its end (every email handed over and
recorded): how tests step a worker on a frozen clock.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from cadenza import logs
from cadenza.domain.transport_settings import TransportSettings
from cadenza.engine.metrics import EngineMetrics
from cadenza.engine.sends import Sends
from cadenza.engine.transports.base import Transport
from cadenza.engine.transports.factory import transport_for
from cadenza.engine.webhook_dispatch import WebhookDispatcher
from cadenza.services import worker_jobs as jobs
from cadenza.services.context import Context
from cadenza.services.worker_jobs import ClaimedEmail

log = logging.getLogger("cadenza.worker")

IDLE_TRANSPORT_SECONDS = 60.0


@dataclass
class WorkerOptions:
    batch_size: int = 200
    lease: timedelta = timedelta(minutes=5)
    # How far ahead a claim grants send slots and takes emails before they are due (their
    # slots are no sooner than that: the session is opened and the message composed
    # before it); the worker waits for each slot itself.
    horizon: timedelta = timedelta(seconds=2)
    poll_interval: float = 1.0
    # Mailboxes sending at the same time, each over its own connection (a thread each
    # while a message is in flight; docs/engine.md).
    connections: int = 1000
    # Mailboxes one claim round takes, the most overdue with a free slot first.
    mailboxes_per_claim: int = 1000
    # Webhook deliveries go out from a thread of their own while the worker runs.
    webhooks: bool = True
    # Claim rounds on a thread of their own, beside the hand-overs (`Worker.claims_beside`):
    # None, where the database lets a claim and a hand-over write at once.
    claims_beside: bool | None = None


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
        self._transports: dict[int, tuple[TransportSettings, Transport, float]] = {}
        self._changed: dict[int, TransportSettings] = {}  # new settings, for after a send
        self.sends = Sends(
            ctx,
            self.id,
            self.stop_event,
            self.metrics,
            self._transport_of,
            self.options.connections,
        )

    @property
    def sent(self) -> int:
        """Messages handed over by this worker (for logs and tests)."""
        return self.sends.handed

    # -- the loop -------------------------------------------------------------------

    def tick(self) -> int:
        """One pass; returns how many step runs it moved (0 means nothing was due)."""
        with logs.bound(worker_id=self.id):  # every record of the tick names the worker
            return self._tick()

    def _tick(self) -> int:
        started = time.perf_counter()
        moved = self._claim_round()
        self.sends.pump()
        self.sends.finish()
        self.sends.release()  # left only when stopping
        self._close_idle_transports()
        self.metrics.ticks.observe(time.perf_counter() - started)
        self._heartbeat()
        return moved

    def _claim_round(self, *, beside: bool = False) -> int:
        """The clocked jobs, then a claim of due emails, queued for hand-over; returns
        how many step runs it moved and emails it claimed. `beside`: on the claimer's
        thread, the claims and mailboxes let go are offered to the loop's (`_Claimer`)."""
        opts = self.options
        moved, resumed = jobs.run_clocked_jobs(self.ctx, opts.batch_size)
        if resumed:
            log.info("resumed after out-of-office: enrollments %s", resumed)
        claiming = time.perf_counter()
        due = jobs.claim_due(
            self.ctx,
            self.id,
            batch_size=opts.batch_size,
            horizon=opts.horizon,
            lease=opts.lease,
            mailboxes=opts.mailboxes_per_claim,
            held_enough=self._held_enough(),
            claimed=self._offer if beside else self._queue,
            let_go=self._offer_let_go if beside else self.sends.release,
        )
        self.metrics.claims.observe(time.perf_counter() - claiming)
        return moved + len(due)

    def _held_enough(self) -> set[int]:
        """The mailboxes whose emails queued here already fill a horizon of their
        throttle's slots: not claimed again this round. The throttle grants slots at its
        rate whatever the mailbox's server takes; at 600 a minute and a server that takes
        a second a message, each round would claim ten more while one left, and the
        backlog held here would grow until the leases ran out (or, were this worker to
        die, wait a lease for recovery rather than go to another worker at once). A mailbox
        whose horizon holds less than two slots (10 a minute: one every 6 s) may hold two:
        one queued late and the next, claimed ahead of its slot as before.

        On the claimer's thread the queues are the loop's: read from a copy of the
        mapping (one step under the interpreter lock), and a queue emptied meanwhile
        counts as empty."""
        horizon, most = self.options.horizon, self.options.batch_size
        full: set[int] = set()
        for mailbox_id, waiting in dict(self.sends.queues).items():
            try:
                spacing = waiting[0].spacing
            except IndexError:
                continue
            fill = most if spacing <= timedelta(0) else min(most, horizon // spacing)
            if len(waiting) >= max(fill, 2):  # two: one late and the next, claimed ahead
                full.add(mailbox_id)
        return full

    def _queue(self, claims: list[ClaimedEmail]) -> None:
        """A claim transaction's emails: queued, and whatever is due by now handed over, so
        a long claim round (a thousand mailboxes) does not hold up earlier slots."""
        settings = jobs.mailbox_settings_of(self.ctx, {claim.mailbox_id for claim in claims})
        self._take(claims, settings)
        self.sends.pump(until=self.ctx.clock.now(), wait=False)

    def _offer(self, claims: list[ClaimedEmail]) -> None:
        """On the claimer's thread: a claim transaction's emails, with their mailboxes'
        settings (read here, off the loop), offered to the loop, which queues them."""
        settings = jobs.mailbox_settings_of(self.ctx, {claim.mailbox_id for claim in claims})
        self.sends.offer(functools.partial(self._take, claims, settings))

    def _offer_let_go(self, mailbox_ids: list[int]) -> None:
        self.sends.offer(functools.partial(self.sends.release, mailbox_ids))

    def _take(self, claims: list[ClaimedEmail], settings: dict[int, TransportSettings]) -> None:
        """On the loop's thread: the claims queued, their mailboxes' transports kept or
        made, and a new transport's session opened ahead of its first slot."""
        opened = [
            mailbox_id
            for mailbox_id, these in settings.items()
            if self._open_transport(mailbox_id, these)
        ]
        # a new transport has no session yet: open it now if its first slot is ahead
        now = self.ctx.clock.now()
        first_slot: dict[int, datetime] = {}
        for claim in claims:
            first_slot[claim.mailbox_id] = min(
                first_slot.get(claim.mailbox_id, claim.slot), claim.slot
            )
        if not self.stop_event.is_set():
            self.sends.warm([m for m in opened if first_slot.get(m, now) > now])
        self.sends.add(claims)

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
        self._heartbeat()  # before the first claim: the others count this worker in their shares
        dispatcher = None
        if self.options.webhooks:
            dispatcher = WebhookDispatcher(self.ctx, metrics=self.metrics)
        if dispatcher is not None:
            dispatcher.start()
        try:
            if self.claims_beside:
                self._loop_beside(exit_when_idle)
            else:
                self._loop(exit_when_idle)
        finally:
            if dispatcher is not None:
                dispatcher.stop()
        self.close()
        log.info("worker %s stopped after handing over %d emails", self.id, self.sent)

    def _loop(self, exit_when_idle: bool) -> None:
        """Claim rounds every half horizon while emails wait or are in flight, so slots
        are granted before they come; at the poll interval when nothing is due."""
        every = self.options.horizon / 2
        try:
            while not self.stop_event.is_set():
                with logs.bound(worker_id=self.id):
                    started = time.perf_counter()
                    moved = self._claim_round()
                    next_round = self.ctx.clock.now() + every
                    self.sends.pump(until=next_round)
                    self.sends.settle(until=next_round)
                    self._close_idle_transports()
                    self.metrics.ticks.observe(time.perf_counter() - started)
                    self._heartbeat()
                if moved == 0 and not self.sends.busy:
                    if exit_when_idle and not self._has_due_work():
                        break
                    self.ctx.clock.wait(self.options.poll_interval, self.stop_event)
        finally:
            with logs.bound(worker_id=self.id):
                self.sends.finish()
                self.sends.release()

    @property
    def claims_beside(self) -> bool:
        """Whether `run` claims on a thread of its own, beside the hand-overs: where a
        claim's transaction and a hand-over's can write at once (PostgreSQL). On SQLite
        a claim holds the one write lock from its first statement, and a hand-over
        would only wait for it (WorkerOptions.claims_beside: None leaves it to this)."""
        if self.options.claims_beside is not None:
            return self.options.claims_beside
        return self.ctx.db.dialect == "postgresql"

    def _loop_beside(self, exit_when_idle: bool) -> None:
        """The loop's thread hands emails over and records them; the claimer's thread
        runs the claim rounds (`_Claimer`) and offers what they claim. While a worker
        claims serially (`_loop`), its mailboxes whose sends end wait for the whole
        round, composing included: a quarter of a busy worker's time
        (bench/engine.py, docs/benchmarks.md)."""
        every = self.options.horizon / 2
        claimer = _Claimer(self)
        self.sends.offered = True
        claimer.start()
        idle = False
        try:
            while not self.stop_event.is_set() and claimer.error is None:
                with logs.bound(worker_id=self.id):
                    next_round = self.ctx.clock.now() + every
                    self.sends.pump(until=next_round)
                    self.sends.settle(until=next_round)
                    self._close_idle_transports()
                    self._heartbeat()
                if not self.sends.busy:
                    if exit_when_idle and claimer.idle.is_set() and not self._has_due_work():
                        idle = True
                        break
                    self.sends.wait_for_offers(self.options.poll_interval)
        finally:
            claimer.stop()
            self.sends.offered = False
            with logs.bound(worker_id=self.id):
                self.sends.take_offers()
                if idle:  # a round that began after the check offered these: sent, not given back
                    self.sends.pump()
                self.sends.finish()
                self.sends.release()
        if claimer.error is not None:
            raise claimer.error

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
        self.sends.shutdown()
        for _, transport, _ in self._transports.values():
            transport.close()
        self._transports.clear()

    # -- connections ----------------------------------------------------------------

    def _transport_of(self, mailbox_id: int) -> Transport:
        """The mailbox's transport, just before a send (none of its sends in flight):
        settings that changed while it was sending take effect now."""
        changed = self._changed.pop(mailbox_id, None)
        if changed is not None:
            self._transports.pop(mailbox_id)[1].close()
            self._transports[mailbox_id] = (changed, transport_for(changed), time.monotonic())
        return self._transports[mailbox_id][1]

    def _open_transport(self, mailbox_id: int, settings: TransportSettings) -> bool:
        """Keeps one transport (one SMTP connection) per mailbox while it has work; a
        change to the mailbox's settings (host, login, password...) opens a new one.
        True when it made a new one (no session yet)."""
        cached = self._transports.get(mailbox_id)
        made = False
        if cached is not None and cached[0] == settings:
            transport = cached[1]
        elif cached is not None and mailbox_id in self.sends.sending:
            self._changed[mailbox_id] = settings  # never close a connection mid-send
            transport = cached[1]
            settings = cached[0]
        else:
            if cached is not None:
                cached[1].close()
            transport, made = transport_for(settings), True
        self._transports[mailbox_id] = (settings, transport, time.monotonic())
        return made

    def _close_idle_transports(self) -> None:
        limit = time.monotonic() - IDLE_TRANSPORT_SECONDS
        for mailbox_id, (_, transport, used) in list(self._transports.items()):
            if used < limit and not self.sends.holds(mailbox_id):
                transport.close()
                del self._transports[mailbox_id]

    # -- what is left ---------------------------------------------------------------

    def _has_due_work(self) -> bool:
        """Due steps, ended out-of-office pauses, or due webhook deliveries (the
        dispatcher thread is sending them)."""
        return jobs.has_due_work(self.ctx, webhooks_too=self.options.webhooks)


class _Claimer(threading.Thread):
    """The claim rounds of a worker whose claims run beside its hand-overs: every half
    horizon while emails were claimed or are held, at the poll interval when nothing
    was. An error ends the thread and, through `error`, the worker's loop."""

    def __init__(self, worker: Worker) -> None:
        super().__init__(name="cadenza-claims", daemon=True)
        self.worker = worker
        self.error: BaseException | None = None
        self.idle = threading.Event()  # the last round claimed and moved nothing
        self._halt = threading.Event()

    def run(self) -> None:
        worker = self.worker
        every = worker.options.horizon.total_seconds() / 2
        try:
            while not self._halt.is_set() and not worker.stop_event.is_set():
                started = time.perf_counter()
                self.idle.clear()  # set again only after a round that found nothing
                with logs.bound(worker_id=worker.id):
                    moved = worker._claim_round(beside=True)
                worker.metrics.ticks.observe(time.perf_counter() - started)
                if not moved:
                    self.idle.set()
                pause = every - (time.perf_counter() - started)
                if not moved and not worker.sends.busy:
                    pause = worker.options.poll_interval
                worker.ctx.clock.wait(max(pause, 0.0), self._halt)
        except BaseException as exc:  # the loop re-raises it
            self.error = exc
            worker.sends.offer(lambda: None)  # wakes the loop

    def stop(self) -> None:
        self._halt.set()
        self.join()
