"""Trying a mailbox's settings without sending anything: "will this mailbox work?"."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from datetime import datetime, timedelta

from cadenza.domain.clock import Clock
from cadenza.domain.enums import MailTransport
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.engine.transports.base import DeliveryOutcome, DeliveryResult
from cadenza.engine.transports.factory import transport_for
from cadenza.store.models import Mailbox


def check_mailbox(
    mailbox: Mailbox, password: str | None, *, timeout: float | None = None
) -> DeliveryResult:
    """SENT when the server accepts a session with these settings; the reply says why not.

    The session is always closed: a check must leave no connection behind on the server,
    and a worker must never pick up one opened with settings it did not load itself.
    """
    if mailbox.transport == MailTransport.CAPTURE:
        return DeliveryResult(DeliveryOutcome.SENT, 250, "capture transport: nothing to connect to")
    transport = transport_for(mailbox, password, timeout=timeout)
    try:
        return transport.check()
    finally:
        transport.close()


# A test is a person waiting on a page: a server that does not answer in this long is
# as good as down, and a short wait keeps a worker of the web server from being held.
CHECK_TIMEOUT_SECONDS = 5.0
POOL_SIZE = 4  # tests running at once in one web process
PER_USER_PER_MINUTE = 6


class ConnectionTests:
    """Connection tests run from the web server, bounded so a flood cannot hold it up.

    At most POOL_SIZE tests run at once (more are refused at once, never queued behind
    slow servers), and each user may start PER_USER_PER_MINUTE a minute, counted on the
    injected clock. Either brake answers 429 `too_many_attempts`.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._pool = threading.BoundedSemaphore(POOL_SIZE)
        self._lock = threading.Lock()
        self._started: dict[int, deque[datetime]] = defaultdict(deque)

    def run(self, user_id: int, mailbox: Mailbox, password: str | None) -> DeliveryResult:
        self._count(user_id)
        if not self._pool.acquire(blocking=False):
            raise CadenzaError(
                ErrorCode.TOO_MANY_ATTEMPTS,
                f"{POOL_SIZE} connection tests are already running: try again in a few seconds",
                {"retry_after_seconds": int(CHECK_TIMEOUT_SECONDS)},
            )
        try:
            return check_mailbox(mailbox, password, timeout=CHECK_TIMEOUT_SECONDS)
        finally:
            self._pool.release()

    def _count(self, user_id: int) -> None:
        now = self._clock.now()
        with self._lock:
            started = self._started[user_id]
            while started and started[0] <= now - timedelta(minutes=1):
                started.popleft()
            if len(started) >= PER_USER_PER_MINUTE:
                raise CadenzaError(
                    ErrorCode.TOO_MANY_ATTEMPTS,
                    f"at most {PER_USER_PER_MINUTE} connection tests a minute: wait a little",
                    {"retry_after_seconds": 60},
                )
            started.append(now)
