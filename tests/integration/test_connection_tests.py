"""Mailbox connection tests: a server that is not SMTP is never echoed back, tests run
in a bounded pool (a flood is refused, not queued) and at a per-user rate."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta

import pytest

from cadenza.domain.errors import CadenzaError
from cadenza.engine.inbox import check_login
from cadenza.engine.transports.factory import transport_for
from cadenza.engine.transports.smtp import SmtpTransport
from cadenza.services.accounts import connection_tests as check
from cadenza.services.accounts.connection_tests import ConnectionTests
from cadenza.services.accounts.mailboxes import create_mailbox, transport_settings
from tests.conftest import assert_error


class RawServer:
    """A TCP server on loopback that greets with `banner` (or nothing, until released)."""

    def __init__(self, banner: bytes | None) -> None:
        self.banner = banner
        self.release = threading.Event()
        self.accepted = threading.Semaphore(0)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._conns.append(conn)
            self.accepted.release()
            if self.banner is not None:
                conn.sendall(self.banner)
                conn.close()

    def close(self) -> None:
        self.release.set()
        for conn in self._conns:
            conn.close()
        self._listener.close()


@pytest.fixture
def raw_server(request):
    server = RawServer(getattr(request, "param", None))
    yield server
    server.close()


BANNERS = [
    b"HTTP/1.1 400 Bad Request\r\nServer: internal-admin-7.3\r\nX-Token: s3cr3t\r\n\r\n",
    b"SSH-2.0-OpenSSH_9.2p1 internal-admin-7.3\r\n",
    b"-ERR wrong number of arguments internal-admin-7.3\r\n",
    b"* OK internal-admin-7.3 IMAP ready\r\n",
]


@pytest.mark.parametrize("raw_server", BANNERS, indirect=True)
def test_a_server_that_is_not_smtp_is_never_echoed(api, raw_server):
    body = {"from_email": "sam@corp.example", "transport": "smtp", "smtp_host": "127.0.0.1",
            "smtp_port": raw_server.port, "smtp_security": "none"}  # fmt: skip
    mailbox = api.post("/mailboxes", json=body).json()
    result = api.post(f"/mailboxes/{mailbox['id']}/test").json()
    assert result["ok"] is False and result["code"] is None
    assert "internal-admin" not in result["reply"] and "s3cr3t" not in result["reply"]
    assert result["reply"] == (
        f"connect: the server at 127.0.0.1:{raw_server.port} did not answer as an SMTP server"
    )


def test_each_user_may_start_a_few_tests_a_minute(api, ctx):
    path = f"/mailboxes/{api.world.mailbox.id}/test"  # capture: answers at once
    for _ in range(check.PER_USER_PER_MINUTE):
        assert api.post(path).json()["ok"] is True
    error = assert_error(api.post(path), 429, "too_many_attempts")
    assert error["details"] == {"retry_after_seconds": 60}
    assert api.post(f"/mailboxes/{api.other_mailbox.id}/test", role="other").status_code == 200
    ctx.clock.advance(timedelta(minutes=1))
    assert api.post(path).json()["ok"] is True


def test_tests_beyond_the_pool_are_refused_at_once_not_queued(ctx, world, raw_server):
    """Slow servers hold POOL_SIZE tests; the next one is refused without waiting."""
    mailbox = create_mailbox(
        ctx, world.user.id, "sam@corp.example", transport="smtp", smtp_host="127.0.0.1",
        smtp_port=raw_server.port, smtp_security="none",
    )  # fmt: skip
    tests = ConnectionTests(ctx.clock, transport_for, check_login)
    results = []
    running = [
        threading.Thread(target=lambda: results.append(tests.run(ctx, mailbox.id, world.user.id)))
        for _ in range(check.POOL_SIZE)
    ]
    for thread in running:
        thread.start()
    for _ in running:  # every one of them is connected and waiting for a greeting
        assert raw_server.accepted.acquire(timeout=10)
    with pytest.raises(CadenzaError) as refused:
        tests.run(ctx, mailbox.id, world.user.id)
    assert refused.value.code == "too_many_attempts"
    raw_server.close()  # the slow servers hang up: the tests end, the pool empties
    for thread in running:
        thread.join(10)
    assert len(results) == check.POOL_SIZE and not any(r.outcome == "sent" for r in results)
    capture = create_mailbox(ctx, world.user.id, "cap@corp.example")
    assert tests.run(ctx, capture.id, world.user.id).code == 250


def test_connection_tests_use_a_short_timeout(ctx, world):
    mailbox = create_mailbox(
        ctx, world.user.id, "sam@corp.example", transport="smtp", smtp_host="127.0.0.1"
    )
    settings = transport_settings(ctx, mailbox.id, timeout=check.CHECK_TIMEOUT_SECONDS)
    assert settings.timeout == check.CHECK_TIMEOUT_SECONDS <= 5
    transport = transport_for(settings)
    assert isinstance(transport, SmtpTransport)
    assert transport.settings.timeout == check.CHECK_TIMEOUT_SECONDS


@pytest.mark.parametrize("raw_server", [BANNERS[0], BANNERS[1]], indirect=True)
def test_an_inbox_that_is_not_imap_is_never_echoed(ctx, world, raw_server):
    from cadenza.engine.inbox import poll_mailbox
    from cadenza.services.accounts.mailboxes import get_mailbox, update_mailbox

    update_mailbox(
        ctx, world.mailbox.id,
        {"imap_host": "127.0.0.1", "imap_port": raw_server.port, "imap_security": "none"},
    )  # fmt: skip
    result = poll_mailbox(ctx, get_mailbox(ctx, world.mailbox.id))
    assert "internal-admin" not in result.error and "s3cr3t" not in result.error
    assert "did not answer as an IMAP server" in result.error


def test_a_mail_host_that_is_a_metadata_address_is_never_connected_to(ctx, world):
    """Saving refuses it; were the row to hold one anyway (set before this rule, or a
    name that resolves there now), the connection is refused before any packet."""
    from cadenza.engine.inbox import poll_mailbox
    from cadenza.engine.transports.smtp import SmtpSettings, SmtpTransport
    from cadenza.services.accounts.mailboxes import get_mailbox
    from cadenza.store.models import Mailbox

    transport = SmtpTransport(SmtpSettings("169.254.169.254", 25, "none", timeout=1))
    result = transport.check()
    assert result.outcome == "auth_failed"  # disconnects the mailbox: its emails wait
    assert result.reply.startswith("169.254.169.254 resolves to a cloud metadata address")
    with ctx.db.transaction() as session:
        session.get(Mailbox, world.mailbox.id).imap_host = "169.254.169.254"
    polled = poll_mailbox(ctx, get_mailbox(ctx, world.mailbox.id))
    assert "cloud metadata address" in polled.error
