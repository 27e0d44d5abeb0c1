"""The web app served by uvicorn on a free port in a thread of the test process.

A browser test needs a real HTTP server for Chromium to talk to, but not a process of
its own: starting `cadenza serve` imports the whole application again (1.5-3 s of CPU
per test, more on a loaded machine), where building the app in-process takes
milliseconds. The app, its middleware and uvicorn are the same as `cadenza serve`
runs (`create_app` over a context from the same settings, with the public URL resolved
the same way); the process itself, its signals and its start-up checks are tested in
tests/e2e against a real `cadenza serve`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from cadenza.cli import public_url
from cadenza.config import Settings
from cadenza.services.context import Context
from cadenza.web.app import create_app

HOST = "127.0.0.1"
START_DEADLINE_SECONDS = 120.0


@contextmanager
def app_in_thread(settings: Settings, port: int) -> Iterator[Context]:
    """Serves the app for `settings` on HOST:`port` until the block ends; yields the
    server's context (its database handle is the server's own)."""
    settings, _warnings = public_url.resolve(settings, HOST, port)
    ctx = Context.from_settings(settings)
    config = uvicorn.Config(
        create_app(ctx), host=HOST, port=port, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"app-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while not server.started:  # set once the socket listens: no fixed sleep
        assert thread.is_alive(), "the app server stopped while starting"
        assert time.monotonic() < deadline, "the app server did not start"
        time.sleep(0.01)
    try:
        yield ctx
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        ctx.db.dispose()
