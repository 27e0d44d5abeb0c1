"""Cost of a /metrics scrape as the installation grows, against a small one.

    .venv/bin/python bench/metrics.py [--small 1000] [--large 100000] [--db sqlite|postgresql]

For each size: N enrollments with a step scheduled 30 days out, 100 due now and one
worker heartbeat; then the whole exposition (database state, heartbeats) is built
ROUNDS times and the median reported. The ratio large/small shows what grows with the
tables: the counts of enrollments and webhook deliveries by state read whole tables
(docs/operations.md, "Cost of a scrape"); the rest follows what is pending.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import timedelta

from common import scratch_database
from tests.support.seed import seed_due_emails

from cadenza.config import Settings
from cadenza.domain.clock import SystemClock
from cadenza.engine.metrics import EngineMetrics
from cadenza.services.context import Context
from cadenza.services.monitoring import heartbeat
from cadenza.web.observability import HttpMetrics, exposition

ROUNDS = 7


def scrape_time(kind: str, scheduled: int) -> float:
    with scratch_database(kind) as db:
        ctx = Context(db=db, clock=SystemClock(), settings=Settings(database_url=db.url))
        seed_due_emails(ctx, scheduled, due_at=ctx.clock.now() + timedelta(days=30))
        seed_due_emails(ctx, 100)
        heartbeat.beat(ctx, "bench", ctx.clock.now(), EngineMetrics().snapshot())
        http = HttpMetrics()
        exposition(ctx, http)  # warm: connections, the migration head
        times = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            exposition(ctx, http)
            times.append(time.perf_counter() - started)
        return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    small = scrape_time(args.db, args.small)
    large = scrape_time(args.db, args.large)
    print(f"{args.db}: scrape with {args.small} enrollments {small * 1000:.1f} ms, "
          f"with {args.large} {large * 1000:.1f} ms (ratio {large / small:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
