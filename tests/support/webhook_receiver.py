"""A real HTTP server on loopback that receives webhook deliveries, with scripted answers."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._answers: deque = deque()
        self._bodies: deque[bytes] = deque()
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.requests.append(Received(self.path, dict(self.headers), body))
                    answer = receiver._answers.popleft() if receiver._answers else 200
                    body = receiver._bodies.popleft() if receiver._bodies else b"ok"
                    receiver._lock.notify_all()
                if isinstance(answer, threading.Event):  # hold the reply until released
                    answer.wait(30)
                    answer = 200
                try:
                    self.send_response(answer)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting: what a timeout test expects

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def answer(self, *statuses: int) -> None:
        """The next requests get these status codes (then 200s)."""
        with self._lock:
            self._answers.extend(statuses)

    def body_next(self, text: str) -> None:
        """The next answer carries this body (then "ok")."""
        with self._lock:
            self._bodies.append(text.encode())

    def hang_next(self) -> threading.Event:
        release = threading.Event()
        with self._lock:
            self._answers.append(release)
        return release

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"{len(self.requests)} of {count} deliveries after {timeout}s")
            return list(self.requests)

    def __enter__(self) -> WebhookReceiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
