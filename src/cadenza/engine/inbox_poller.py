"""The inbox poller: every interval, read each IMAP-enabled mailbox, then resume the
out-of-office pauses that are over. Runs in its own thread beside the worker, so a
slow IMAP server never delays a send."""

from __future__ import annotations

import logging
import threading

from cadenza.engine.inbox import PollResult, poll_mailbox
from cadenza.services.context import Context
from cadenza.services.mailboxes import mailboxes_with_imap
from cadenza.services.signals import resume_due

log = logging.getLogger("cadenza.inbox")

DEFAULT_INTERVAL_SECONDS = 60.0


class InboxPoller:
    def __init__(self, ctx: Context, interval: float = DEFAULT_INTERVAL_SECONDS) -> None:
        self.ctx = ctx
        self.interval = interval
        self.stop_event = threading.Event()

    def poll_once(self, mailbox_id: int | None = None) -> tuple[list[PollResult], list[int]]:
        results = []
        for mailbox in mailboxes_with_imap(self.ctx):
            if mailbox_id is None or mailbox.id == mailbox_id:
                results.append(poll_mailbox(self.ctx, mailbox))
        return results, resume_due(self.ctx)

    def run(self) -> None:
        """Until stopped; one failing pass is logged and the next one tried."""
        log.info("inbox poller started (every %ss)", self.interval)
        while not self.stop_event.is_set():
            try:
                results, resumed = self.poll_once()
            except Exception:  # the database may be away for a moment: try again later
                log.exception("inbox poll failed")
            else:
                for result in results:
                    if result.fetched:
                        log.info("inbox of mailbox %s: %s", result.mailbox_id, result.kinds)
                if resumed:
                    log.info("resumed after out-of-office: enrollments %s", resumed)
            self.ctx.clock.wait(self.interval, self.stop_event)
        log.info("inbox poller stopped")

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="cadenza-inbox", daemon=True)
        thread.start()
        return thread
