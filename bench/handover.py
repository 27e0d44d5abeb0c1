"""What one hand-over commit costs, alone on the machine, by the emails it carries.

    .venv/bin/python bench/handover.py [--db postgresql|sqlite] [--sizes 1,4,8]
        [--commits 500] [--rounds 3]

For each size K: K mailboxes with due emails are claimed by this process, then the
commits of `hand_over_many` are made one after another as a worker makes them, each
marking the next email of the K mailboxes `handing` and recording the previous K as
sent (services/delivery/handover.py). No SMTP, no other worker, no claimer beside it:
the commit's own cost. Printed per size, the median over `--rounds` of: the calling
thread's CPU a commit (median of the commits), the database server's CPU a commit
(PostgreSQL: its processes', so nothing else may use it meanwhile), and the wall time.
Then a straight line through the sizes: the cost a commit pays whatever it carries,
the cost each email adds, and their ratio (issue 15 §2: with eight mailboxes and one
email in flight each, a commit at ×1 carries eight, at ×2 four, at ×4 two).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

from common import database_server_cpu, scratch_database
from tests.support.seed import seed_due_emails

from cadenza.config import Settings
from cadenza.domain.clock import FrozenClock
from cadenza.domain.delivery_outcome import DeliveryOutcome, DeliveryResult
from cadenza.services.context import Context
from cadenza.services.delivery import claims
from cadenza.services.delivery.handover import HandOver, hand_over_many

SENT = DeliveryResult(DeliveryOutcome.SENT, 250, "2.0.0 Ok: queued as 4XyZ")
WARM_UP = 50  # commits before the measured ones: connections, prepared statements


def measure(
    kind: str, size: int, commits: int, largest: int | None = None
) -> tuple[float, float, float]:
    """(thread CPU, server CPU, wall) seconds a commit of `size` emails. `largest`: the
    largest size measured; each size's tables are filled to that size's rows with
    emails due in a month (claimed by no commit), so that every size runs on tables of
    one size, and with the plans PostgreSQL makes for them: on the few hundred rows of
    a one-email run it read whole small tables where the others looked rows up by
    key (`auto_explain`, docs/benchmarks.md, the thirtieth session)."""
    with scratch_database(kind) as db:
        # the database's clock moves a second a commit: each finds its mailboxes' spacing
        # (0.6 ms, the most a mailbox may send) passed, however fast the commits are
        clock = FrozenClock(datetime.now(UTC))
        ctx = Context(db=db, clock=clock, settings=Settings(database_url=db.url))
        per_mailbox = WARM_UP + commits + 1
        filler = (max(largest or size, size) - size) * per_mailbox
        if filler:
            seed_due_emails(
                ctx, filler, mailboxes=max(largest or size, size) - size,
                due_at=clock.now() + timedelta(days=30),
            )  # fmt: skip
        boxes = seed_due_emails(ctx, size * per_mailbox, mailboxes=size)
        clock.advance(timedelta(seconds=1))  # the seeded emails fall due
        queues: dict[int, list[claims.ClaimedEmail]] = {box: [] for box in boxes}
        while made := claims.claim_emails(
            ctx, boxes, "bench", batch_size=200, horizon=timedelta(minutes=5),
            lease=timedelta(days=1),
        ):  # fmt: skip
            for claim in made:
                queues[claim.mailbox_id].append(claim)
        for waiting in queues.values():
            waiting.sort(key=lambda claim: claim.slot)
        rounds = list(zip(*queues.values(), strict=True))
        finished: list[tuple[claims.ClaimedEmail, DeliveryResult]] = []

        def commit(claimed: tuple[claims.ClaimedEmail, ...]) -> float:
            nonlocal finished
            clock.advance(timedelta(seconds=1))
            started = time.thread_time()
            answers = hand_over_many(ctx, list(claimed), "bench", finished)
            took = time.thread_time() - started
            if any(answer is not HandOver.GO for answer in answers):
                raise SystemExit(f"a hand-over did not go: {answers}")
            finished = [(claim, SENT) for claim in claimed]
            return took

        for claimed in rounds[:WARM_UP]:
            commit(claimed)
        server_before = database_server_cpu() if kind == "postgresql" else 0.0
        began = time.perf_counter()
        thread = [commit(claimed) for claimed in rounds[WARM_UP : WARM_UP + commits]]
        wall = time.perf_counter() - began
        server = database_server_cpu() - server_before if kind == "postgresql" else 0.0
        return statistics.median(thread), server / commits, wall / commits


def line(sizes: list[int], costs: list[float]) -> tuple[float, float]:
    """Least squares: (cost whatever a commit carries, cost each email adds)."""
    fit = statistics.linear_regression(sizes, costs)
    return fit.intercept, fit.slope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--sizes", default="1,4,8", help="emails a commit, a list")
    parser.add_argument("--commits", type=int, default=500, help="measured commits a size")
    parser.add_argument("--rounds", type=int, default=3, help="runs of every size, alternating")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    if len(sizes) < 2:
        parser.error("two sizes at least: the line needs them")
    runs: dict[int, list[tuple[float, float, float]]] = {size: [] for size in sizes}
    for _ in range(args.rounds):
        for size in sizes:
            runs[size].append(measure(args.db, size, args.commits, max(sizes)))
    print(f"{args.db}, {args.commits} commits a size, median of {args.rounds} rounds; "
          "milliseconds a commit:")  # fmt: skip
    print(f"{'emails':>7}{'thread CPU':>12}{'server CPU':>12}{'both':>8}{'wall':>8}"
          f"{'both an email':>15}")  # fmt: skip
    medians = {}
    for size in sizes:
        thread, server, wall = (
            1000 * statistics.median(run[i] for run in runs[size]) for i in range(3)
        )
        medians[size] = (thread, server)
        print(f"{size:>7}{thread:>12.3f}{server:>12.3f}{thread + server:>8.3f}{wall:>8.3f}"
              f"{(thread + server) / size:>15.3f}")  # fmt: skip
    if args.db == "postgresql":  # SQLite has no server: its thread is the whole cost
        for name, index in (("thread", 0), ("server", 1)):
            fixed, each = line(sizes, [medians[size][index] for size in sizes])
            print(f"{name} CPU: {fixed:.3f} ms a commit + {each:.3f} ms an email")
    fixed, each = line(sizes, [sum(medians[size]) for size in sizes])
    print(f"both: {fixed:.3f} ms a commit + {each:.3f} ms an email; a commit's own cost is "
          f"{fixed / each:.1f} emails' worth")  # fmt: skip
    if 4 in medians and 8 in medians:
        ratio = (sum(medians[4]) / 4) / (sum(medians[8]) / 8)
        print(f"an email in a commit of 4 ÷ in a commit of 8: {ratio:.2f}")


if __name__ == "__main__":
    main()
