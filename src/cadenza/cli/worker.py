"""`cadenza worker`: runs due steps until stopped (SIGTERM/SIGINT finish the current email)."""

from __future__ import annotations

import signal
from datetime import timedelta

import typer

from cadenza import logs
from cadenza.cli.common import console, err_console, fails_cleanly, make_context
from cadenza.engine.inbox_poller import DEFAULT_INTERVAL_SECONDS, InboxPoller
from cadenza.engine.worker import Worker, WorkerOptions
from cadenza.engine.worker_lock import WorkerLock
from cadenza.runtime import settled_heap
from cadenza.services.accounts.keys import seal_everything


@fails_cleanly
def worker(
    batch_size: int = typer.Option(200, help="Step runs claimed per mailbox per tick."),
    lease_seconds: int = typer.Option(300, help="How long a claim holds before others take it."),
    poll: float = typer.Option(1.0, help="Seconds between ticks when nothing is due."),
    exit_when_idle: bool = typer.Option(
        False, help="Exit once nothing is due (batch jobs, tests)."
    ),
    worker_id: str = typer.Option(None, "--id", help="Name in claims and logs (default host:pid)."),
    connections: int = typer.Option(
        WorkerOptions.connections,
        min=1,
        help="Mailboxes sending at the same time, each over its own SMTP connection.",
    ),
    horizon: float = typer.Option(
        WorkerOptions.horizon.total_seconds(),
        min=0.1,
        help="Seconds ahead that a claim grants send slots and takes emails not yet due "
        "(claims again every half of it).",
    ),
    inbox_interval: float = typer.Option(
        DEFAULT_INTERVAL_SECONDS, help="Seconds between inbox (IMAP) polls; 0 turns it off."
    ),
) -> None:
    """Run the engine: send due emails, create due tasks, schedule next steps."""
    ctx = make_context()
    logs.configure(ctx.settings.log_format, ctx.settings.log_level)
    options = WorkerOptions(
        batch_size=batch_size,
        lease=timedelta(seconds=lease_seconds),
        poll_interval=poll,
        connections=connections,
        horizon=timedelta(seconds=horizon),
    )
    engine = Worker(ctx, options, worker_id)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: engine.stop_event.set())
    with WorkerLock(ctx.db.url):
        seal_everything(ctx)  # clear values left by an older version
        console.print(f"worker {engine.id} running on {ctx.db.engine.url.render_as_string()}")
        if "public_url" not in ctx.settings.model_fields_set:
            err_console.print(
                "[bold yellow]warning[/] CADENZA_PUBLIC_URL is not set: links in emails lead "
                f"to {ctx.settings.public_url}; set it to where `cadenza serve` is reached",
                highlight=False,
            )
        poller = (
            InboxPoller(ctx, inbox_interval, metrics=engine.metrics) if inbox_interval > 0 else None
        )
        if poller is not None:
            poller.start()
        try:
            with settled_heap():
                engine.run(exit_when_idle=exit_when_idle)
        finally:
            if poller is not None:
                poller.stop()
