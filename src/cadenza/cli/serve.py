"""`cadenza serve`: the API, with the worker in the same process (the embedded default)."""

from __future__ import annotations

import logging
import signal
import threading

import typer
import uvicorn

from cadenza import logs
from cadenza.cli import public_url
from cadenza.cli.common import console, err_console, fails_cleanly
from cadenza.config import Settings
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.engine.inbox_poller import DEFAULT_INTERVAL_SECONDS, InboxPoller
from cadenza.engine.worker import Worker, WorkerOptions
from cadenza.engine.worker_lock import WorkerLock
from cadenza.runtime import settle_heap
from cadenza.services.accounts.keys import seal_everything
from cadenza.services.context import Context
from cadenza.store import migrate

log = logging.getLogger("cadenza.serve")


@fails_cleanly
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    no_worker: bool = typer.Option(
        False, "--no-worker", help="Serve only the web; run `cadenza worker` elsewhere."
    ),
    poll: float = typer.Option(1.0, help="Worker: seconds between ticks when nothing is due."),
    inbox_interval: float = typer.Option(
        DEFAULT_INTERVAL_SECONDS, help="Seconds between inbox (IMAP) polls; 0 turns it off."
    ),
) -> None:
    """Serve the API on HOST:PORT, and run the worker alongside unless --no-worker."""
    settings, warnings = public_url.resolve(Settings(), host, port)
    logs.configure(settings.log_format, settings.log_level)
    ctx = Context.from_settings(settings)
    if not migrate.is_current(ctx.db):
        raise CadenzaError(
            ErrorCode.INVALID_STATE, "the database schema is not current: run `cadenza db upgrade`"
        )
    seal_everything(ctx)  # clear values left by an older version: sealed before serving
    # The web app is imported here, not with the command line: its routes and pages are
    # half of what `cadenza` imports, and every other command (the worker above all)
    # would pay for them at each start.
    from cadenza.web.app import create_app

    app = create_app(ctx)
    settle_heap()  # the app is built: out of the collector's way (cadenza/runtime.py)
    engine = poller = None
    metrics_listener = _listen_for_metrics(app, settings.metrics_address)
    lock = WorkerLock(ctx.db.url)
    if not no_worker:
        lock.acquire()
        engine = Worker(ctx, WorkerOptions(poll_interval=poll))
        thread = threading.Thread(target=engine.run, name="cadenza-worker", daemon=True)
        thread.start()
        if inbox_interval > 0:
            poller = InboxPoller(ctx, inbox_interval, metrics=engine.metrics)
            poller.start()
    console.print(f"Cadenza API on http://{host}:{port}  (docs: http://{host}:{port}/docs)")
    console.print(f"Links in emails start at {settings.public_url}", highlight=False)
    for warning in warnings:
        err_console.print(f"[bold yellow]warning[/] {warning}", highlight=False)
    # uvicorn handles SIGTERM/SIGINT itself, then re-raises the signal to the handler it
    # found: make that one stop the worker, rather than end the process mid-send.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: engine and engine.stop_event.set())
    if settings.metrics_address:
        console.print(f"Metrics on http://{settings.metrics_address}/metrics", highlight=False)
    try:
        # Our logging (cadenza/logs.py), and a line per request from the app's middleware
        # (with its request id) instead of uvicorn's access log.
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    finally:
        if metrics_listener is not None:
            metrics_listener.should_exit = True
        if poller is not None:
            poller.stop()
        if engine is not None:
            engine.stop_event.set()  # the worker finishes the email in flight, then stops
            thread.join(timeout=120)
            lock.release()


def _listen_for_metrics(app, address: str | None) -> uvicorn.Server | None:
    """CADENZA_METRICS_ADDRESS: a second listener serving /metrics only, without a token,
    on its own thread (docs/operations.md). Its address is its protection."""
    if not address:
        return None
    host, _, port = address.rpartition(":")
    from cadenza.web.app import create_metrics_app

    config = uvicorn.Config(
        create_metrics_app(app),
        host=host.strip("[]"),
        port=int(port),
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, name="cadenza-metrics", daemon=True).start()
    return server
