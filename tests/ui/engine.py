"""Running the engine from a UI test: a worker in the test process on the live server's
database, with a frozen clock set to the moment the test needs."""

from __future__ import annotations

from datetime import datetime, timedelta

from cadenza.domain.clock import FrozenClock
from cadenza.engine.worker import Worker, WorkerOptions
from cadenza.services.delivery import outbox


def run_engine(ctx, at: datetime, *, until_sent: int | None = None) -> None:
    """Ticks at `at`; with `until_sent`, keeps ticking (30 s apart, bounded) until that many
    emails went out."""
    ctx.clock = FrozenClock(at)
    worker = Worker(ctx, WorkerOptions(batch_size=50), worker_id="ui-test")
    try:
        for _ in range(50):
            worker.tick()
            if until_sent is None or len(outbox.list_messages(ctx, status="sent")) >= until_sent:
                return
            ctx.clock.advance(timedelta(seconds=30))
        raise AssertionError("the engine did not send the emails")
    finally:
        worker.close()
