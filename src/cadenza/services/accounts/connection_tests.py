"""Trying a mailbox's settings without sending anything: "will this mailbox work?".

One service for the API (POST /mailboxes/{id}/test) and the settings page, so both read
the mailbox as the same user, count against the same brakes and close the session the
same way. Transports live in the engine, which services may not import: the app hands
ConnectionTests the way to build one (a `TransportFactory`, in practice
engine.transports.factory.transport_for) when it wires it, and this module only knows
the two calls a test makes, `check` and `close`.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Protocol

from cadenza.domain.clock import Clock
from cadenza.domain.delivery_outcome import DeliveryResult
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.transport_settings import TransportSettings
from cadenza.services.accounts.mailboxes import MailboxView, get_mailbox, transport_settings
from cadenza.services.context import Context


class Checkable(Protocol):
    """The part of engine.transports.base.Transport a connection test uses."""

    def check(self) -> DeliveryResult: ...

    def close(self) -> None: ...


TransportFactory = Callable[[TransportSettings], Checkable]
# engine.inbox.check_login: logs in to a mailbox's inbox and out again.
InboxCheck = Callable[[Context, MailboxView], DeliveryResult]

# A test is a person waiting on a page: a server that does not answer in this long is
# as good as down, and a short wait keeps a worker of the web server from being held.
CHECK_TIMEOUT_SECONDS = 5.0
POOL_SIZE = 4  # tests running at once in one web process
PER_USER_PER_MINUTE = 6


def check_settings(settings: TransportSettings, make: TransportFactory) -> DeliveryResult:
    """SENT when the server accepts a session with these settings; the reply says why not.

    The session is always closed: a check must leave no connection behind on the server,
    and a worker must never pick up one opened with settings it did not load itself.
    """
    transport = make(settings)
    try:
        return transport.check()
    finally:
        transport.close()


class ConnectionTests:
    """Connection tests run from the web server, bounded so a flood cannot hold it up.

    At most POOL_SIZE tests run at once (more are refused at once, never queued behind
    slow servers), and each user may start PER_USER_PER_MINUTE a minute, counted on the
    injected clock. Either brake answers 429 `too_many_attempts`. One instance per app:
    the brakes count across the API and the web pages alike.
    """

    def __init__(
        self, clock: Clock, make_transport: TransportFactory, check_inbox: InboxCheck
    ) -> None:
        self._clock = clock
        self._make_transport = make_transport
        self._check_inbox = check_inbox
        self._pool = threading.BoundedSemaphore(POOL_SIZE)
        self._lock = threading.Lock()
        self._started: dict[int, deque[datetime]] = defaultdict(deque)

    def run(self, ctx: Context, mailbox_id: int, user_id: int) -> DeliveryResult:
        """Tests `mailbox_id` as `user_id` sees it: someone else's answers as missing (404)
        before it counts against the user's tests."""
        settings = transport_settings(
            ctx, mailbox_id, actor_id=user_id, timeout=CHECK_TIMEOUT_SECONDS
        )
        with self._slot(user_id):
            return check_settings(settings, self._make_transport)

    def run_inbox(self, ctx: Context, mailbox_id: int, user_id: int) -> DeliveryResult:
        """Logs in to the mailbox's inbox (IMAP) as the worker would, under the same
        brakes: whether replies can be read. A mailbox without an inbox is refused."""
        mailbox = get_mailbox(ctx, mailbox_id, actor_id=user_id)
        if not mailbox.imap_host:
            raise CadenzaError(
                ErrorCode.VALIDATION_ERROR,
                f"mailbox {mailbox_id} has no inbox to test: set its IMAP host first",
            )
        with self._slot(user_id):
            return self._check_inbox(ctx, mailbox)

    @contextmanager
    def _slot(self, user_id: int) -> Iterator[None]:
        self._count(user_id)
        if not self._pool.acquire(blocking=False):
            raise CadenzaError(
                ErrorCode.TOO_MANY_ATTEMPTS,
                f"{POOL_SIZE} connection tests are already running: try again in a few seconds",
                {"retry_after_seconds": int(CHECK_TIMEOUT_SECONDS)},
            )
        try:
            yield
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
