"""The engine against a server that takes its time: demanded rate, achieved rate, lateness.

    .venv/bin/python bench/latency.py [--mailboxes 1000] [--per-minute 10] [--latency 0.25]
        [--greeting-delay 0.25] [--seconds 60] [--db sqlite|postgresql] [--workers 1]
        [--connections 2000]

A real provider answers each message after 0.2-1 s. The sink here (its own process,
tests/support/smtp_sink.py) waits `--latency` before answering each DATA and
`--greeting-delay` before greeting a new client. Every mailbox has more due emails
than it may send in the run, so it sends at its per-minute limit: the demanded rate is
mailboxes x limit / 60. The mailboxes' first slots are spread evenly over one spacing
(6 s at 10/min), so demand is even from the first second.

Printed: demanded and achieved rates and their ratio (achieved counts the emails
handed over within the run's window), the lateness of each hand-over against its
planned slot (the k-th email of a mailbox is planned k spacings after the mailbox's
first slot: any drift of the engine shows as lateness), and at peak the workers' memory
(RSS), threads, open SMTP connections and (PostgreSQL) database connections
(sampled every half second).

The workers are `cadenza worker` processes, as in production; on SQLite exactly one.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psutil
from common import ROOT, scratch_database, sink_process, wait_until_ready
from sqlalchemy import make_url, select, update
from tests.support.seed import seed_due_emails

from cadenza.config import Settings
from cadenza.domain.clock import SystemClock
from cadenza.domain.enums import StepRunStatus
from cadenza.services.context import Context
from cadenza.store.db import Database
from cadenza.store.models import Message, StepRun


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--per-minute", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.25, help="seconds to answer DATA")
    parser.add_argument("--greeting-delay", type=float, default=0.25)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the window")
    parser.add_argument(
        "--start-when-ready", action="store_true",
        help="make the emails due once every worker is ready, not 6 s after they start",
    )  # fmt: skip
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=None, help="per worker")
    parser.add_argument("--horizon", type=float, default=None, help="the workers' claim horizon")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the (first) worker into FILE")
    args = parser.parse_args()
    if args.db == "sqlite" and args.workers != 1:
        parser.error("SQLite runs exactly one worker")
    spacing = 60 / args.per_minute
    # Enough that no mailbox runs dry within the window (and a little after).
    per_mailbox = math.ceil(args.seconds / spacing) + 2
    sink_args = ["--latency", str(args.latency), "--greeting-delay", str(args.greeting_delay)]
    with sink_process(sink_args) as (_host, port, counted), scratch_database(args.db) as db:
        ctx = Context(db=db, clock=SystemClock(), settings=Settings(database_url=db.url))
        print(f"seeding {args.mailboxes} mailboxes x {per_mailbox} emails ...", flush=True)
        boxes = seed_due_emails(
            ctx,
            args.mailboxes * per_mailbox,
            mailboxes=args.mailboxes,
            smtp_port=port,
            per_minute_limit=args.per_minute,
            due_at=datetime.now(UTC) + timedelta(days=1),  # moved to the start below
        )
        first_slot: dict[int, datetime] = {}

        def begin(lead: float) -> datetime:
            """Makes every mailbox's emails due from `lead` seconds on, spread over one
            spacing; returns the window's start. Each mailbox's runs are found through
            the pending runs' (mailbox, due) index: by the bare mailbox column, each
            update read the whole table, and on PostgreSQL the 2,000 updates took 9 s of
            a 6 s lead, so most first emails were due before the engine could see them
            (and counted as late: docs/benchmarks.md, *Twelfth session*)."""
            start = datetime.now(UTC) + timedelta(seconds=lead)
            first_slot.update(
                (box, start + timedelta(seconds=spacing * i / len(boxes)))
                for i, box in enumerate(boxes)
            )
            with db.transaction() as session:
                for box, slot in first_slot.items():
                    session.execute(
                        update(StepRun)
                        .where(StepRun.mailbox_id == box, StepRun.status == StepRunStatus.PENDING)
                        .values(due_at=slot)
                    )
            late = (datetime.now(UTC) - start).total_seconds()
            if late > 0:
                print(f"warning: the due times were set {late:.1f} s after the first was due")
            return start

        peak = run_workers(db, args, begin, port)
        rows = read_hand_overs(ctx)
    report(args, spacing, first_slot, rows, peak, counted["messages"])


def run_workers(
    db: Database, args: argparse.Namespace, begin: Callable[[float], datetime], sink_port: int
) -> dict[str, float]:
    """Starts the workers, makes the emails due (`begin`), samples the workers until the
    window ends, stops them (SIGTERM). By default the emails fall due 6 s after the
    workers start (their imports), so a slower start shows as lateness that lasts (a
    mailbox's next email leaves a spacing after its last); with --start-when-ready
    they fall due a second after every worker has beaten (ready to claim): the engine
    keeping pace, without the processes' start."""
    url = db.url
    started = time.monotonic()
    folder = tempfile.mkdtemp(prefix="cadenza-latency-")
    env = {
        **os.environ,
        "CADENZA_DATABASE_URL": url,
        "CADENZA_KEY_FILE": os.path.join(folder, "cadenza.key"),
        "CADENZA_LOG_LEVEL": "WARNING",
    }
    command = ["-m", "cadenza", "worker", "--inbox-interval", "0", "--poll", "0.2"]
    if args.connections:
        command += ["--connections", str(args.connections)]
    if args.horizon:
        command += ["--horizon", str(args.horizon)]
    profiled = ["-m", "cProfile", "-o", args.profile] if args.profile else []
    workers = [
        subprocess.Popen(
            [sys.executable, *(profiled if i == 0 else []), *command],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        for i in range(args.workers)
    ]
    peak = {"rss_mb": 0.0, "threads": 0, "connections": 0, "db_connections": 0}
    db_port = make_url(url).port or 5432
    stop = threading.Event()

    def sample() -> None:
        processes = [psutil.Process(w.pid) for w in workers]
        while not stop.wait(0.5):
            try:
                rss = sum(p.memory_info().rss for p in processes) / 2**20
                threads = sum(p.num_threads() for p in processes)
                ports = [
                    c.raddr.port
                    for p in processes
                    for c in p.net_connections(kind="tcp")
                    if c.raddr
                ]
                smtp = ports.count(sink_port)
                database = ports.count(db_port) if url.startswith("postgresql") else 0
            except psutil.Error:
                continue
            peak["rss_mb"] = max(peak["rss_mb"], rss)
            peak["threads"] = max(peak["threads"], threads)
            peak["connections"] = max(peak["connections"], smtp)
            peak["db_connections"] = max(peak["db_connections"], database)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if args.start_when_ready:
        wait_until_ready(db, workers)
        print(f"workers ready after {time.monotonic() - started:.1f} s", flush=True)
        start = begin(1.0)
    else:
        start = begin(6.0)  # the workers' start-up (imports)
    end = start + timedelta(seconds=args.seconds)
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()))
    stop.set()
    sampler.join()
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(timeout=120)
    return peak


def read_hand_overs(ctx: Context) -> list[tuple[int, datetime]]:
    """(mailbox, handed_at) of every email handed over, in hand-over order."""
    with ctx.db.transaction() as session:
        rows = session.execute(
            select(Message.mailbox_id, Message.handed_at)
            .where(Message.handed_at.is_not(None))
            .order_by(Message.mailbox_id, Message.handed_at)
        ).all()
    return [(box, _aware(at)) for box, at in rows]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def report(args, spacing, first_slot, rows, peak, sink_count) -> None:
    start = min(first_slot.values())
    end = start + timedelta(seconds=args.seconds)
    lateness, in_window, seen = [], 0, {}
    first_lateness: list[float] = []
    for box, handed_at in rows:
        k = seen.get(box, 0)
        seen[box] = k + 1
        if handed_at >= end:
            continue
        in_window += 1
        planned = first_slot[box] + timedelta(seconds=k * spacing)
        lateness.append(max(0.0, (handed_at - planned).total_seconds()))
        if k == 0:
            first_lateness.append(lateness[-1])
    demanded = args.mailboxes * args.per_minute / 60
    achieved = in_window / args.seconds
    print(f"database {args.db}, {args.workers} worker(s), {args.mailboxes} mailboxes at "
          f"{args.per_minute}/min, server latency {args.latency * 1000:.0f} ms, greeting "
          f"{args.greeting_delay * 1000:.0f} ms, window {args.seconds:.0f} s")  # fmt: skip
    print(f"demanded: {demanded:8.1f} emails/s")
    print(f"achieved: {achieved:8.1f} emails/s ({in_window} handed over in the window)")
    print(f"ratio achieved/demanded: {achieved / demanded:.3f}")
    p50, p99, worst = (
        percentile(lateness, 0.5),
        percentile(lateness, 0.99),
        max(lateness, default=0),
    )
    print(f"lateness against planned slots: p50 {p50:.2f} s, p99 {p99:.2f} s, max {worst:.2f} s")
    print(
        f"  of each mailbox's first email: p50 {percentile(first_lateness, 0.5):.2f} s, "
        f"p99 {percentile(first_lateness, 0.99):.2f} s (a mailbox's later emails leave a "
        "spacing after it: what it lost at the start, it keeps)"
    )
    print(f"at peak: worker RSS {peak['rss_mb']:.0f} MB, {peak['threads']} threads, "
          f"{peak['connections']} open SMTP connections, "
          f"{peak['db_connections']} database connections")  # fmt: skip
    print(f"sink accepted {sink_count} messages in all ({len(rows)} handed over)")


if __name__ == "__main__":
    main()
