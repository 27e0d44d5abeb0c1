"""Engine throughput against a bare smtplib loop, to the same local SMTP sink, in one run.

    .venv/bin/python bench/engine.py [-n 20000] [--db sqlite|postgresql] [--workers 1]

Baseline: N pre-built messages sent by one smtplib connection (no database, no
rendering). Engine: N due email steps claimed, rendered, sent and recorded by the
worker(s) through the same sink. The ratio engine/baseline is what is reported
(machines here are shared and noisy; absolute rates are not comparable across runs).
"""

from __future__ import annotations

import argparse
import os
import smtplib
import subprocess
import sys
import time
from datetime import UTC, datetime

import psutil
from common import ROOT, scratch_database, sink_process
from tests.support.seed import seed_due_emails

from cadenza.config import Settings
from cadenza.domain.clock import SystemClock
from cadenza.domain.message import OutgoingEmail, build_mime, new_message_id
from cadenza.engine.worker import Worker, WorkerOptions
from cadenza.services.context import Context


def baseline(host: str, port: int, count: int) -> float:
    messages = [
        build_mime(
            OutgoingEmail(
                message_id=new_message_id("box@example.com"),
                from_email="box@example.com",
                from_name="Box",
                to_email=f"c{i}@corp.example",
                to_name="Ann",
                subject="Hi Ann",
                html_body="<p>Hello</p>",
                date=datetime.now(UTC),
            )
        )
        for i in range(count)
    ]
    started = time.perf_counter()
    with smtplib.SMTP(host, port) as smtp:
        for i, raw in enumerate(messages):
            smtp.sendmail("box@example.com", [f"c{i}@corp.example"], raw)
    return count / (time.perf_counter() - started)


def engine(
    host: str, port: int, count: int, kind: str, workers: int, mailboxes: int
) -> tuple[float, float]:
    """Messages per second, and the worker's CPU seconds (one in-process worker only)."""
    with scratch_database(kind) as db:
        ctx = Context(db=db, clock=SystemClock(), settings=Settings(database_url=db.url))
        seed_due_emails(ctx, count, mailboxes=mailboxes, smtp_port=port)
        started, cpu = time.perf_counter(), cpu_seconds()
        if workers == 1:
            worker = Worker(ctx, WorkerOptions(batch_size=500))
            worker.run(exit_when_idle=True)
        else:
            env = {**os.environ, "CADENZA_DATABASE_URL": db.url}
            command = [sys.executable, "-m", "cadenza", "worker", "--exit-when-idle",
                       "--poll", "0.05", "--batch-size", "500"]  # fmt: skip
            processes = [
                subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
                for _ in range(workers)
            ]  # fmt: skip
            for process in processes:
                process.wait()
        return count / (time.perf_counter() - started), cpu_seconds() - cpu


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU of a process (this one by default), children excluded."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--mailboxes", type=int, default=None,
        help="sending mailboxes, each its own connection (default: 2 per worker)",
    )  # fmt: skip
    args = parser.parse_args()
    with sink_process() as (host, port, counted):
        sink_before = cpu_seconds(counted["pid"])
        base = baseline(host, port, args.n)
        sink_between = cpu_seconds(counted["pid"])
        mailboxes = args.mailboxes or 2 * args.workers
        rate, engine_cpu = engine(host, port, args.n, args.db, args.workers, mailboxes)
        sink_after = cpu_seconds(counted["pid"])
    expected = 2 * args.n
    per_message = 1000 / args.n
    print(f"baseline smtplib loop: {base:8.0f} messages/s")
    print(f"engine ({args.db}, {args.workers} worker(s), {mailboxes} mailboxes): "
          f"{rate:8.0f} messages/s")  # fmt: skip
    print(f"ratio engine/baseline: {rate / base:.2f}")
    print(f"sink received {counted['messages']} of {expected} messages")
    # Where the CPU goes: both sides share two cores with the sink.
    print(f"sink CPU per message: {(sink_between - sink_before) * per_message:.3f} ms (baseline), "
          f"{(sink_after - sink_between) * per_message:.3f} ms (engine)")  # fmt: skip
    if args.workers == 1:
        print(f"worker CPU per message: {engine_cpu * per_message:.3f} ms")


if __name__ == "__main__":
    main()
