"""The inbox poller: every interval — or as soon as an IDLE session says mail arrived —
read each IMAP-enabled mailbox. Runs in its own thread beside the worker, so a slow
IMAP server never delays a send. It only reads mail: what is timed (the end of an
out-of-office pause) is the worker's tick, so it happens with the poller off too."""

from __future__ import annotations

import logging
import threading

from cadenza.engine.inbox import PollResult, imap_credential, poll_mailbox
from cadenza.engine.inbox_idle import CHECK_SECONDS, IdleWatch, settings_key
from cadenza.engine.metrics import EngineMetrics
from cadenza.services.accounts.mailboxes import mailboxes_with_imap
from cadenza.services.context import Context

log = logging.getLogger("cadenza.inbox")

DEFAULT_INTERVAL_SECONDS = 60.0


class InboxPoller:
    def __init__(
        self,
        ctx: Context,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        *,
        idle: bool = True,
        metrics: EngineMetrics | None = None,
    ) -> None:
        self.ctx = ctx
        # The worker's of this process, so its heartbeat reports the polls (metrics.py).
        self.metrics = metrics or EngineMetrics()
        self.interval = interval
        self.idle = idle
        self.stop_event = threading.Event()
        # Set by stop() and by IDLE sessions: ends the wait between passes early.
        self.wake = threading.Event()
        self._watches: dict[int, IdleWatch] = {}

    def poll_once(self, mailbox_id: int | None = None) -> list[PollResult]:
        results = []
        for mailbox in mailboxes_with_imap(self.ctx):
            if mailbox_id is None or mailbox.id == mailbox_id:
                result = poll_mailbox(self.ctx, mailbox)
                self._count(result)
                results.append(result)
        return results

    def _count(self, result: PollResult) -> None:
        mailbox = str(result.mailbox_id)
        self.metrics.inbox_polls.labels(mailbox, "error" if result.error else "ok").inc()
        for verdict, count in result.kinds.items():
            self.metrics.inbox_messages.labels(mailbox, str(verdict)).inc(count)

    def run(self) -> None:
        """Until stopped; one failing pass is logged and the next one tried."""
        log.info("inbox poller started (every %ss, IDLE %s)", self.interval, self.idle)
        while not self.stop_event.is_set():
            self.wake.clear()
            try:
                if self.idle:
                    self._watch_mailboxes()
                results = self.poll_once()
            except Exception:  # the database may be away for a moment: try again later
                log.exception("inbox poll failed")
            else:
                for result in results:
                    if result.fetched:
                        log.info("inbox of mailbox %s: %s", result.mailbox_id, result.kinds)
            self.ctx.clock.wait(self.interval, self.wake)
        for watch in self._watches.values():
            watch.stop()
        for watch in self._watches.values():  # each notices within one IDLE check
            watch.thread.join(timeout=CHECK_SECONDS * 2)
        log.info("inbox poller stopped")

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="cadenza-inbox", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()

    def watching(self) -> set[int]:
        """Mailboxes whose server is holding our IDLE right now."""
        return {mailbox_id for mailbox_id, w in self._watches.items() if w.idling.is_set()}

    def _watch_mailboxes(self) -> None:
        """One IDLE session per mailbox with IMAP; re-opened when its settings change."""
        current = {m.id: m for m in mailboxes_with_imap(self.ctx)}
        for mailbox_id, watch in list(self._watches.items()):
            mailbox = current.get(mailbox_id)
            if mailbox is None or settings_key(mailbox) != watch.key:
                watch.stop()
                del self._watches[mailbox_id]
        for mailbox_id, mailbox in current.items():
            if mailbox_id not in self._watches:
                watch = IdleWatch(
                    mailbox,
                    imap_credential(self.ctx, mailbox),
                    self.wake,
                    retry_seconds=self.interval,
                )
                self._watches[mailbox_id] = watch
                watch.start()
