"""A real SMTP server on loopback (aiosmtpd in a thread) whose misbehaviour tests can script.

Transports are tested against a server that speaks real SMTP over real sockets, because
the property that matters (at most once) depends on exactly when a connection breaks. Faults
are queued per command and consumed in order, one per command received.

Run alone for benchmarks: `python -m tests.support.smtp_sink --port N` prints
"listening on HOST:PORT", counts messages without keeping them, and prints the count
on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email.parser
import functools
import logging
import signal
import ssl
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword

FAULT_COMMANDS = ("MAIL", "RCPT", "DATA", "AUTH")

# aiosmtpd 1.4.6 warns about its own use of a deprecated attribute on every successful AUTH.
logging.getLogger("mail.log").addFilter(
    lambda record: not str(record.msg).startswith("Session.login_data is deprecated")
)
TLS_MODES = ("none", "starttls", "tls")


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message_id: str | None
    received_at: float  # time.monotonic()


@functools.cache
def _certificate_authority() -> trustme.CA:
    """One CA per process: every sink's certificate chains to it."""
    return trustme.CA()


@functools.cache
def _server_certificate() -> trustme.LeafCert:
    return _certificate_authority().issue_cert("127.0.0.1", "localhost")


class SmtpSink:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: str = "none",
        auth: dict[str, str] | None = None,
        keep_messages: bool = True,
        oauth: Callable[[str, str], bool] | None = None,
        latency: float = 0.0,
        greeting_delay: float = 0.0,
        pipelining: bool = True,
    ) -> None:
        """`port=0` picks a free port; `auth` (username → password) makes AUTH mandatory;
        `oauth` (username, access token → live?) offers AUTH XOAUTH2, accepting only what
        it says is live (the OAuth server's tokens), and makes AUTH mandatory too;
        `keep_messages=False` only counts (for benchmarks). `latency` (seconds) is how
        long each message waits for its answer after the final dot and `greeting_delay`
        how long a new client waits for the greeting: a real provider's 0.2-1 s, for
        bench/latency.py (asyncio sleeps: thousands of sessions wait at once).
        `pipelining` offers PIPELINING (RFC 2920) in the EHLO answer, as real providers
        do: aiosmtpd reads each command from its stream in turn, so commands written
        together are answered in order; `pipelined_envelopes` counts the envelopes that
        came in one write."""
        if tls not in TLS_MODES:
            raise ValueError(f"tls must be one of {TLS_MODES}")
        self.host, self.port, self.tls, self.auth = host, port, tls, auth
        self.oauth = oauth
        self.keep_messages = keep_messages
        self.latency, self.greeting_delay = latency, greeting_delay
        self.pipelining = pipelining
        self._pipelined_envelopes = 0
        self.ssl_context_for_clients: ssl.SSLContext | None = None
        server_context = None
        if tls != "none":
            self.ssl_context_for_clients = ssl.create_default_context()
            _certificate_authority().configure_trust(self.ssl_context_for_clients)
            server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            _server_certificate().configure_cert(server_context)
        self._lock = threading.Condition()
        self._messages: list[ReceivedMessage] = []
        self._count = 0
        self._connections = 0
        self._faults: dict[str, deque[tuple[str, Any]]] = defaultdict(deque)
        self._hold: threading.Event | None = None
        self._held = self._most_held = 0
        self._let_go = 0  # held messages to answer before the release (let_go)
        self._live: set[_SinkSMTP] = set()
        self._running = False
        options: dict[str, Any] = {
            "server_hostname": "cadenza-sink",
            # aiosmtpd only counts STARTTLS as "TLS", so AUTH over implicit TLS needs False.
            "auth_require_tls": (auth is None and oauth is None) or tls == "starttls",
        }
        if oauth is None:
            options["auth_exclude_mechanism"] = ["XOAUTH2"]
        if auth is not None:
            options["authenticator"] = self._authenticate
        if tls == "starttls":
            options.update(tls_context=server_context, require_starttls=True)
        elif tls == "tls":
            options["ssl_context"] = server_context
        self._controller = _Controller(self, _Handler(self), hostname=host, port=port, **options)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> SmtpSink:
        self._controller.start()
        self._running = True
        self.port = self._controller.port
        with self._lock:
            self._connections = 0  # aiosmtpd's own start-up probe is not a client
        return self

    def stop(self) -> None:
        if self._running:
            self._running = False
            self.close_connections()  # a client left connected must not outlive the test
            self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what arrived ---------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._messages)

    @property
    def message_count(self) -> int:
        """Accepted messages, also counted when keep_messages is False."""
        with self._lock:
            return self._count

    @property
    def connections(self) -> int:
        """Client connections accepted since start() or reset()."""
        with self._lock:
            return self._connections

    @property
    def pipelined_envelopes(self) -> int:
        """Envelopes whose RCPT and DATA had already arrived when MAIL was read."""
        with self._lock:
            return self._pipelined_envelopes

    def message_ids(self) -> list[str | None]:
        return [m.message_id for m in self.messages]

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """For senders on other threads: wait until `count` messages were accepted."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._count >= count, timeout):
                raise TimeoutError(f"{self._count} of {count} messages after {timeout}s")
            return list(self._messages)

    def reset(self) -> None:
        """Forget messages, pending faults and the connection count."""
        with self._lock:
            self._messages.clear()
            self._faults.clear()
            self._count = self._connections = 0

    # -- scripted faults ------------------------------------------------------------------

    def fail_next(self, command: str, reply: str, times: int = 1) -> None:
        """Answer the next `times` `command`s with `reply` (DATA: after the whole message).

        A 421 reply also closes the connection, as real servers do.
        """
        self._script(command, ("reply", reply), times)

    def pass_next(self, command: str, times: int = 1) -> None:
        """Answer the next `times` `command`s normally: a fault queued after them then
        falls on a later one (the second recipient, say)."""
        self._script(command, ("pass", None), times)

    def drop_next(self, command: str, times: int = 1) -> None:
        """Close the connection instead of answering. For DATA this happens after the whole
        message arrived and the message is not kept: the client cannot know (UNKNOWN)."""
        self._script(command, ("drop", None), times)

    def hang_next_data(self) -> threading.Event:
        """Keep the next message (the server has it) but withhold the reply until the
        returned event is set, so the client is left waiting after its final dot."""
        return self.hang_data_after(0)[1]

    def hang_data_after(self, passes: int) -> tuple[threading.Event, threading.Event]:
        """Answer `passes` messages normally, then hang on the next one as above.

        Returns (reached, release): `reached` is set once the hung message has arrived,
        so a test can act (say, kill the client) exactly while it waits for the reply.
        """
        reached, release = threading.Event(), threading.Event()
        with self._lock:
            self._faults["DATA"].extend([("pass", None)] * passes)
            self._faults["DATA"].append(("hang", (reached, release)))
        return reached, release

    def hold_all_data(self) -> threading.Event:
        """From now on keep every message but withhold its reply until the returned event
        is set: as many messages wait at once as clients send (see wait_for_held)."""
        release = threading.Event()
        with self._lock:
            self._hold = release
        return release

    def let_go(self, count: int = 1) -> None:
        """Answers `count` of the held messages (whichever look first), the others still
        held: one send ends while the rest are in flight."""
        with self._lock:
            self._let_go += count

    def _take_let_go(self) -> bool:
        with self._lock:
            if self._let_go <= 0:
                return False
            self._let_go -= 1
            return True

    def wait_for_held(self, count: int, timeout: float = 30.0) -> int:
        """Waits until `count` messages are held at the same time; returns the most seen."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._held >= count, timeout):
                raise TimeoutError(f"{self._held} of {count} messages held after {timeout}s")
            return self._most_held

    def close_connections(self, reply: str | None = None) -> None:
        """End every open session from the server side, like an idle timeout; with `reply`
        (e.g. "421 4.4.2 idle timeout") say so first."""

        async def close_all() -> None:
            sessions = list(self._live)
            for session in sessions:
                if reply and session.transport is not None:
                    session.transport.write(reply.encode() + b"\r\n")
                if session.transport is not None:
                    session.transport.abort()
            await asyncio.gather(*(s.gone.wait() for s in sessions))

        loop = self._controller.loop
        asyncio.run_coroutine_threadsafe(close_all(), loop).result(timeout=10)

    def _script(self, command: str, fault: tuple[str, Any], times: int) -> None:
        if command not in FAULT_COMMANDS:
            raise ValueError(f"command must be one of {FAULT_COMMANDS}")
        with self._lock:
            self._faults[command].extend([fault] * times)

    # -- called from the server thread ----------------------------------------------------

    def _next_fault(self, command: str) -> tuple[str, Any] | None:
        with self._lock:
            queue = self._faults.get(command)
            return queue.popleft() if queue else None

    def _holding(self, change: int) -> None:
        with self._lock:
            self._held += change
            self._most_held = max(self._most_held, self._held)
            self._lock.notify_all()

    def _envelope_arrived_whole(self) -> None:
        with self._lock:
            self._pipelined_envelopes += 1

    def _opened(self, session: _SinkSMTP) -> None:
        self._live.add(session)
        with self._lock:
            self._connections += 1

    def _closed(self, session: _SinkSMTP) -> None:
        self._live.discard(session)

    def _store(self, envelope: Any) -> None:
        data: bytes = envelope.original_content
        message = None
        if self.keep_messages:
            message_id = email.parser.BytesHeaderParser().parsebytes(data).get("Message-ID")
            message = ReceivedMessage(
                mail_from=envelope.mail_from,
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=data,
                message_id=message_id.strip() if message_id else None,
                received_at=time.monotonic(),
            )
        with self._lock:
            if message is not None:
                self._messages.append(message)
            self._count += 1
            self._lock.notify_all()

    def _authenticate(
        self, server: SMTP, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert self.auth is not None
        ok = isinstance(data, LoginPassword) and self.auth.get(
            data.login.decode(errors="replace")
        ) == data.password.decode(errors="replace")
        return AuthResult(success=ok, handled=False)


class _Handler:
    """aiosmtpd hooks: apply the next scripted fault, else behave like a plain server."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.sink.pipelining:  # before the last line, which alone has "250 " (no dash)
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_AUTH(self, server: SMTP, session: Any, envelope: Any, args: list[str]) -> Any:
        fault = await self._fault("AUTH", server)
        return MISSING if fault is None else fault

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """SASL XOAUTH2 as the big providers answer it: a bad token gets a 334 with an
        error document, then 535 once the client sends its empty line."""
        if len(args) == 1:
            data = await server.challenge_auth("")
            if data is MISSING:
                return AuthResult(success=False)
        else:
            try:
                data = base64.b64decode(args[1].encode(), validate=True)
            except ValueError:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        parts = data.decode(errors="replace").split("\x01")
        fields = dict(part.split("=", 1) for part in parts if "=" in part)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        if self.sink.oauth is not None and self.sink.oauth(user, token):
            return AuthResult(success=True, auth_data=user)
        await server.challenge_auth('{"status":"401","schemes":"bearer"}')
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Username and Password not accepted"
        )

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        needs_auth = self.sink.auth is not None or self.sink.oauth is not None
        if needs_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        fault = await self._fault("MAIL", server)
        if fault is not None:
            return fault
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        fault = await self._fault("RCPT", server)
        if fault is not None:
            return fault
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        fault = await self._fault("DATA", server, envelope)
        if fault is not None:
            return fault
        if self.sink.latency:
            await asyncio.sleep(self.sink.latency)
        release = self.sink._hold
        if release is not None:
            self.sink._store(envelope)
            self.sink._holding(+1)
            while not release.is_set() and not self.sink._take_let_go():  # polled, as for "hang"
                await asyncio.sleep(0.01)
            self.sink._holding(-1)
            return "250 2.0.0 OK: queued"
        self.sink._store(envelope)
        return "250 2.0.0 OK: queued"

    async def _fault(self, command: str, server: SMTP, envelope: Any = None) -> str | None:
        """The scripted reply for this command, or None to carry on normally."""
        fault = self.sink._next_fault(command)
        if fault is None:
            return None
        kind, argument = fault
        if kind == "pass":
            return None
        if kind == "reply":
            if argument.startswith("421"):
                server.loop.call_soon(server.transport.close)  # after the reply is written
            return argument
        if kind == "hang":
            self.sink._store(envelope)
            reached, release = argument
            reached.set()
            while not release.is_set():  # polled: a cancelled wait leaves no thread behind
                await asyncio.sleep(0.01)
            return "250 2.0.0 OK: queued"
        server.transport.abort()  # "drop": connection_lost() cancels this handler
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")


class _SinkSMTP(SMTP):
    """Tracks live sessions so the sink can count and close them."""

    def __init__(self, sink: SmtpSink, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sink = sink
        self.gone = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        new_connection = self._original_transport is None  # STARTTLS calls this again
        super().connection_made(transport)
        if new_connection:
            self.sink._opened(self)

    async def push(self, status: str | bytes) -> None:
        """The greeting waits `greeting_delay` (not for aiosmtpd's own start-up probe)."""
        greeting = isinstance(status, str) and status.startswith("220 ")
        first = not getattr(self, "_greeted", False)
        if greeting and first and self.sink.greeting_delay and self.sink._running:
            self._greeted = True
            await asyncio.sleep(self.sink.greeting_delay)
        await super().push(status)

    async def smtp_MAIL(self, arg: str) -> None:
        """Notes an envelope written in one piece: its DATA already waits behind MAIL
        in the stream (asyncio's StreamReader buffer) when MAIL is read."""
        waiting = bytes(getattr(self._reader, "_buffer", b"")).upper()
        if b"RCPT TO:" in waiting and waiting.rstrip().endswith(b"DATA"):
            self.sink._envelope_arrived_whole()
        await super().smtp_MAIL(arg)

    def connection_lost(self, error: Exception | None) -> None:
        self.sink._closed(self)
        self.gone.set()
        super().connection_lost(error)


class _Controller(Controller):
    def __init__(self, sink: SmtpSink, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sink = sink

    def factory(self) -> SMTP:
        return _SinkSMTP(self.sink, self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # With port 0 the OS chose the port: learn it before aiosmtpd probes its own server.
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Count messages sent to a local SMTP sink.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds before each answer to DATA"
    )
    parser.add_argument(
        "--greeting-delay", type=float, default=0.0, help="seconds before the greeting"
    )
    parser.add_argument(
        "--no-pipelining", action="store_true",
        help="do not offer PIPELINING (real providers offer it; offered by default here)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    stopping = {signal.SIGTERM, signal.SIGINT}
    # Blocked before the server thread starts (it inherits the mask), then awaited: no
    # handler runs at an awkward moment, and a signal sent early waits its turn.
    signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
    sink = SmtpSink(
        host=args.host,
        port=args.port,
        keep_messages=False,
        latency=args.latency,
        greeting_delay=args.greeting_delay,
        pipelining=not args.no_pipelining,
    )
    with sink:
        print(f"listening on {sink.host}:{sink.port}", flush=True)
        signal.sigwait(stopping)
    print(sink.message_count, flush=True)


if __name__ == "__main__":
    main()
