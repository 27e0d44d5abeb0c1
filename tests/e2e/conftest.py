"""A live `cadenza serve` process on a free port, over a fresh SQLite database."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_ready(
    url: str, process: subprocess.Popen, seconds: float = 180, log: Path | None = None
) -> None:
    """Polls /readyz, as a load balancer would, with a deadline (not a fixed sleep). The
    deadline is generous: on a loaded machine, with tests in parallel, starting Python
    and the app has taken close to a minute."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, log.read_text() if log else process.communicate()[0]
        assert time.monotonic() < deadline, "cadenza serve did not become ready"
        time.sleep(0.1)


def wait_for(predicate, timeout=120.0):
    """Polls until the worker in the server has done its part (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, "timed out waiting for the server"
        time.sleep(0.05)
    return result


class LiveServer:
    def __init__(self, url: str, database_url: str, process: subprocess.Popen) -> None:
        self.url = url
        self.database_url = database_url
        self.process = process

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def cli(self, *args: str) -> str:
        env = {**os.environ, "CADENZA_DATABASE_URL": self.database_url}
        done = subprocess.run(
            [sys.executable, "-m", "cadenza", *args], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


def start_serve(
    env: dict[str, str], port: int, *options: str, log: Path | None = None
) -> subprocess.Popen:
    """`cadenza serve` on `port` in a process of its own, returned once it answers.

    Its output is piped (read when it stops), or written to `log` for a server that
    lives long enough to fill a pipe nobody reads (which would block its logging)."""
    with open(log, "w") if log else contextlib.nullcontext() as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "cadenza", "serve", "--port", str(port), *options],
            env=env,
            stdout=output or subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    wait_until_ready(f"http://127.0.0.1:{port}", process, log=log)
    return process


@pytest.fixture
def live_server(sqlite_template, tmp_path):
    database = tmp_path / "live.db"
    shutil.copy(sqlite_template, database)
    database_url = f"sqlite:///{database}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # links in the emails it sends lead back to this very server
    env = {**os.environ, "CADENZA_DATABASE_URL": database_url, "CADENZA_PUBLIC_URL": url}
    process = start_serve(env, port, "--poll", "0.2")
    server = LiveServer(url, database_url, process)
    yield server
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
