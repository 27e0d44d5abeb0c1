"""The worker loop: recover dead claims, create due tasks, claim and send due emails.

Each tick claims what is due now (within every mailbox's throttle), then hands the
claimed emails over in slot order, pausing between them as the spacing requires.
Recording one email's outcome and marking the next as "handing" share a single
commit, so the protocol costs one transaction per email.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from cadenza.engine.transports.base import Transport
from cadenza.engine.transports.factory import settings_key, transport_for
from cadenza.services import claims, delivery, recovery, tasks
from cadenza.services.context import Context
from cadenza.services.mailboxes import get_mailbox

log = logging.getLogger("cadenza.worker")

IDLE_TRANSPORT_SECONDS = 60.0


@dataclass
class WorkerOptions:
    batch_size: int = 200
    lease: timedelta = timedelta(minutes=5)
    # How far ahead a tick grants send slots; the worker waits for each slot itself.
    horizon: timedelta = timedelta(seconds=2)
    poll_interval: float = 1.0


class Worker:
    def __init__(
        self, ctx: Context, options: WorkerOptions | None = None, worker_id: str | None = None
    ) -> None:
        self.ctx = ctx
        self.options = options or WorkerOptions()
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stop_event = threading.Event()
        self.sent = 0  # messages handed over by this worker (for logs and tests)
        self._transports: dict[int, tuple[tuple, Transport, float]] = {}

    # -- the loop -------------------------------------------------------------------

    def tick(self) -> int:
        """One pass; returns how many step runs it moved (0 means nothing was due)."""
        opts = self.options
        moved = recovery.recover_expired(self.ctx)
        moved += tasks.create_due_tasks(self.ctx, opts.batch_size)
        due: list[claims.ClaimedEmail] = []
        for mailbox_id in claims.mailboxes_with_due_email(self.ctx):
            due += claims.claim_emails(
                self.ctx,
                mailbox_id,
                self.id,
                batch_size=opts.batch_size,
                horizon=opts.horizon,
                lease=opts.lease,
            )
        due.sort(key=lambda c: c.slot)
        reminders = tasks.claim_due_reminders(self.ctx)
        for mailbox_id in {c.mailbox_id for c in due} | {r.mailbox_id for r in reminders}:
            self._open_transport(mailbox_id)
        self._hand_over(due)
        for reminder in reminders:
            outcome = self._transports[reminder.mailbox_id][1].send(
                reminder.sender, [reminder.recipient], reminder.raw
            )
            log.info("reminder for task %s: %s", reminder.task_id, outcome.outcome)
        self._close_idle_transports()
        return moved + len(due) + len(reminders)

    def run(self, *, exit_when_idle: bool = False) -> None:
        """Ticks until stopped (SIGTERM sets stop_event); the current email is finished first."""
        log.info("worker %s started", self.id)
        while not self.stop_event.is_set():
            if self.tick() == 0:
                if exit_when_idle and not self._has_due_work():
                    break
                self.ctx.clock.wait(self.options.poll_interval, self.stop_event)
        self.close()
        log.info("worker %s stopped after handing over %d emails", self.id, self.sent)

    def run_until(self, deadline: datetime) -> None:
        """For tests and simulations on a FrozenClock: jumps from one due time to the next."""
        while True:
            if self.tick():
                continue
            upcoming = recovery.next_wakeup(self.ctx)
            if upcoming is None or upcoming > deadline:
                self.ctx.clock.set(max(deadline, self.ctx.clock.now()))
                return
            self.ctx.clock.set(upcoming)

    def close(self) -> None:
        for _, transport, _ in self._transports.values():
            transport.close()
        self._transports.clear()

    # -- sending --------------------------------------------------------------------

    def _hand_over(self, batch: list[claims.ClaimedEmail]) -> None:
        unrecorded: tuple[claims.ClaimedEmail, object] | None = None
        for index, claim in enumerate(batch):
            if self.stop_event.is_set():
                self._record(unrecorded)
                recovery.release_unsent(self.ctx, batch[index:], self.id)
                return
            wait = (claim.slot - self.ctx.clock.now()).total_seconds()
            if wait > 0:
                self.ctx.clock.wait(wait, self.stop_event)
            step = self._begin(claim, unrecorded)
            unrecorded = None
            while step is delivery.HandOver.WAIT:
                if self.stop_event.is_set():
                    recovery.release_unsent(self.ctx, batch[index:], self.id)
                    return
                self.ctx.clock.wait(claim.spacing.total_seconds() / 10, self.stop_event)
                step = self._begin(claim, None)
            if step is delivery.HandOver.GO:
                transport = self._transports[claim.mailbox_id][1]
                result = transport.send(claim.sender, [claim.recipient], claim.raw)
                self.sent += 1
                unrecorded = (claim, result)
        self._record(unrecorded)

    def _begin(self, claim, unrecorded) -> delivery.HandOver:
        """Records the previous email's outcome and marks this one as leaving: one commit."""
        with self.ctx.db.transaction() as session:
            if unrecorded is not None:
                delivery.record_outcome(session, self.ctx, *unrecorded, self.id)
            return delivery.begin_handing(session, self.ctx, claim, self.id)

    def _record(self, unrecorded) -> None:
        if unrecorded is not None:
            with self.ctx.db.transaction() as session:
                delivery.record_outcome(session, self.ctx, *unrecorded, self.id)

    def _open_transport(self, mailbox_id: int) -> None:
        """Keeps one transport (one SMTP connection) per mailbox while it has work."""
        mailbox = get_mailbox(self.ctx, mailbox_id)
        key = settings_key(mailbox)
        cached = self._transports.get(mailbox_id)
        if cached is not None and cached[0] == key:
            transport = cached[1]
        else:
            if cached is not None:
                cached[1].close()
            transport = transport_for(mailbox)
        self._transports[mailbox_id] = (key, transport, time.monotonic())

    def _close_idle_transports(self) -> None:
        limit = time.monotonic() - IDLE_TRANSPORT_SECONDS
        for mailbox_id, (_, transport, used) in list(self._transports.items()):
            if used < limit:
                transport.close()
                del self._transports[mailbox_id]

    # -- what is left ---------------------------------------------------------------

    def _has_due_work(self) -> bool:
        upcoming = recovery.next_due_at(self.ctx)
        return upcoming is not None and upcoming <= self.ctx.clock.now()
