"""Cost of a worker's claim as the number of scheduled (not yet due) steps grows.

    .venv/bin/python bench/tick.py [--small 1000] [--large 1000000] [--db sqlite|postgresql]

For each size: N step runs scheduled 30 days out, then rounds of 100 due ones; the
time to find and claim a batch of 100 is measured (median of the rounds). The ratio
large/small shows whether a tick's cost follows what is due (≈1) or what exists.
Then a real `cadenza worker` process runs over the large database, and its peak
memory (max RSS) is reported.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import timedelta

from common import ROOT, scratch_database
from tests.support.seed import seed_due_emails

from cadenza.config import Settings
from cadenza.domain.clock import SystemClock
from cadenza.services.context import Context
from cadenza.services.delivery import claims

BATCH = 100
ROUNDS = 5


def claim_times(kind: str, scheduled: int, *, measure_memory: bool) -> tuple[float, float | None]:
    with scratch_database(kind) as db:
        ctx = Context(db=db, clock=SystemClock(), settings=Settings(database_url=db.url))
        later = ctx.clock.now() + timedelta(days=30)
        started = time.perf_counter()
        seed_due_emails(ctx, scheduled, due_at=later)
        print(f"  seeded {scheduled} scheduled steps in {time.perf_counter() - started:.0f}s")
        times = []
        for _ in range(ROUNDS):
            seed_due_emails(ctx, BATCH)
            started = time.perf_counter()
            claimed = sum(
                len(
                    claims.claim_emails(
                        ctx, mailbox_id, "bench", batch_size=BATCH,
                        horizon=timedelta(minutes=1), lease=timedelta(minutes=5),
                    )
                )
                for mailbox_id in claims.mailboxes_with_due_email(ctx)
            )  # fmt: skip
            times.append(time.perf_counter() - started)
            assert claimed == BATCH, claimed
        memory = worker_peak_memory(db.url) if measure_memory else None
        return statistics.median(times), memory


def worker_peak_memory(url: str) -> float:
    """Peak RSS (MB) of a worker process that sends 100 due steps among all the scheduled."""
    env = {**os.environ, "CADENZA_DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-c",
         "import sys; sys.path.insert(0, 'bench'); sys.path.insert(0, '.');"
         "from cadenza.services.context import Context; from tests.support.seed import "
         "seed_due_emails; seed_due_emails(Context.from_settings(), 100)"],
        env=env, cwd=ROOT, check=True,
    )  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(
        [sys.executable, "-m", "cadenza", "worker", "--exit-when-idle", "--poll", "0.1"],
        env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    print(f"{args.db}: claim {BATCH} due steps, median of {ROUNDS} rounds")
    small, _ = claim_times(args.db, args.small, measure_memory=False)
    large, memory = claim_times(args.db, args.large, measure_memory=True)
    print(f"with {args.small:>9} scheduled: {small * 1000:7.1f} ms per claim of {BATCH}")
    print(f"with {args.large:>9} scheduled: {large * 1000:7.1f} ms per claim of {BATCH}")
    print(f"ratio large/small: {large / small:.2f}")
    print(f"worker peak memory (max RSS) with {args.large} scheduled: {memory:.0f} MB")


if __name__ == "__main__":
    main()
