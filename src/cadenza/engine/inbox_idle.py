"""IMAP IDLE (RFC 2177): the server tells us when mail arrives, so we poll right away.

One thread per mailbox whose server offers IDLE holds a read-only session on INBOX
and sets the poller's wake-up event on every new-message notice; the poller then
runs its usual pass. Reading stays in `inbox.poll_mailbox`: IDLE only says *when*.
A server without IDLE, or a broken connection, simply leaves the mailbox on the
interval (the watcher retries after it).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time

from cadenza.engine.inbox import FAILURES, FOLDER, connect, logout
from cadenza.store.models import Mailbox

log = logging.getLogger("cadenza.inbox")

# How long one IDLE wait lasts (a local wait, no traffic): short enough to notice a stop.
# The IDLE itself is renewed well before the 29 minutes after which servers may drop it.
CHECK_SECONDS = 1.0
RENEW_SECONDS = 20 * 60.0


def settings_key(mailbox: Mailbox) -> tuple:
    """Changes when anything the IMAP session depends on changes (it is then re-opened)."""
    return (
        mailbox.imap_host,
        mailbox.imap_port,
        mailbox.imap_security,
        mailbox.imap_username,
        mailbox.imap_password,
        mailbox.oauth_access_token,  # renewed: the session re-opens with the new one
    )


class IdleWatch:
    def __init__(
        self,
        mailbox: Mailbox,
        password: str | None,
        wake: threading.Event,
        retry_seconds: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.mailbox_id = mailbox.id
        self.key = settings_key(mailbox)
        self._mailbox = mailbox
        self._password = password
        self._wake = wake
        self._retry = retry_seconds
        self._ssl_context = ssl_context
        self.stop_event = threading.Event()
        self.idling = threading.Event()  # set while the server holds our IDLE
        self.thread = threading.Thread(
            target=self._run, name=f"cadenza-idle-{mailbox.id}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                if not self._session():
                    return  # the server has no IDLE: the interval it is
            except FAILURES as exc:
                log.info("IDLE on mailbox %s ended: %s", self.mailbox_id, type(exc).__name__)
            self.idling.clear()
            self.stop_event.wait(self._retry)

    def _session(self) -> bool:
        client = connect(self._mailbox, self._password, self._ssl_context)
        try:
            if not client.has_capability("IDLE"):
                return False
            client.select_folder(FOLDER, readonly=True)
            while not self.stop_event.is_set():
                client.idle()
                self.idling.set()
                renew_at = time.monotonic() + RENEW_SECONDS
                while not self.stop_event.is_set() and time.monotonic() < renew_at:
                    responses = client.idle_check(timeout=CHECK_SECONDS)
                    if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                        self._wake.set()
                client.idle_done()
            return True
        finally:
            self.idling.clear()
            logout(client)
