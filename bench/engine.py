"""Engine throughput against a bare smtplib loop, to the same local SMTP sink, in one run.

    .venv/bin/python bench/engine.py [-n 20000] [--db sqlite|postgresql] [--workers 1]
        [--rounds 1] [--mailboxes M] [--statements K] [--writes] [--start-when-ready]

Baseline: N pre-built messages sent by one smtplib connection (no database, no
rendering). Engine: N due email steps claimed, rendered, sent and recorded by the
worker(s) through the same sink. The ratio engine/baseline is what is reported
(machines here are shared and noisy; absolute rates are not comparable across runs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import psycopg
from common import (
    ROOT,
    check_running,
    database_server_cpu,
    scratch_database,
    sink_process,
    wait_until_ready,
)
from sqlalchemy import func, select, update
from tests.support.seed import seed_due_emails

from cadenza.config import Settings
from cadenza.domain.clock import SystemClock
from cadenza.domain.enums import MessageStatus, StepRunStatus
from cadenza.domain.message import OutgoingEmail, build_mime, new_message_id
from cadenza.services.context import Context
from cadenza.store.db import Database
from cadenza.store.models import Message, StepRun


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


# Emails claimed per mailbox and round: small enough that a worker which claimed first
# drains its surplus within seconds and the others get their shares of the mailboxes
# (services/delivery/affinity.py); a local sink takes a mailbox's 100 in well under a
# second, so no worker waits for a claim.
BATCH = 100


@dataclass
class Run:
    """One engine run: its rate, and per worker process the emails it handed over, its
    CPU seconds and its seconds waiting on the database (bench/timed_worker.py)."""

    db: str
    workers: int
    rate: float
    handed: list[int]
    cpu: list[float]
    db_seconds: list[float]
    statements: list[int]
    commits: list[int]
    server_cpu: float = 0.0  # the database server's CPU seconds (PostgreSQL's processes)
    by_text: dict[str, int] | None = None  # statements by their text's start (--statements)
    waited: dict[str, int] | None = None  # microseconds waited for them, by the same
    writes: dict[str, tuple[int, ...]] | None = None  # by table (--writes), and "WAL"
    sink_cpu: float = 0.0  # the SMTP sink's CPU seconds during the run

    def cpu_an_email(self) -> float:
        """Every process's CPU seconds an email: the workers', the database server's and
        the sink's. On a machine whose cores all of them share, the rate can be no more
        than its cores divided by this: what a run with more workers must cut to be
        faster here, and what more cores would give it."""
        return (sum(self.cpu) + self.server_cpu + self.sink_cpu) / max(sum(self.handed), 1)


def engine(
    host: str, port: int, count: int, kind: str, workers: int, mailboxes: int,
    statements: bool = False, writes: bool = False, steps: int = 1, warm: bool = False,
) -> Run:  # fmt: skip
    """N due emails sent by `workers` `cadenza worker` processes, timed from the moment
    the first of them is ready (its imports done) to the last one's exit.

    `warm` (--start-when-ready): the emails fall due once every worker has beaten, and
    the run is timed from that moment to the last email recorded as sent (the workers
    are stopped after it). Timed cold, every run also counts its workers' start after
    their imports (connections, the first heartbeat) and their exit (a last claim round
    that finds nothing, the process's end), and with several workers the first one's
    seconds alone, claiming every mailbox until the others are up and it lets their
    shares go (delivery/affinity.py): what a deployment whose workers run before the
    emails fall due never sees. Their CPU still counts the idle polling before the
    emails fall due, a few milliseconds."""
    with scratch_database(kind) as db, tempfile.TemporaryDirectory() as folder:
        ctx = Context(db=db, clock=SystemClock(), settings=Settings(database_url=db.url))
        later = datetime.now(UTC) + timedelta(days=1) if warm else None
        seed_due_emails(ctx, count, mailboxes=mailboxes, smtp_port=port, steps=steps,
                        due_at=later)  # fmt: skip
        server_before = database_server_cpu() if kind == "postgresql" else 0.0
        counting = writes and kind == "postgresql"
        if counting:
            db.dispose()  # the seed's connections end: their counts reach the statistics
            written_before = rows_written(db.url)
        env = {**os.environ, "CADENZA_DATABASE_URL": db.url}
        if statements:
            env["CADENZA_BENCH_STATEMENTS"] = "1"
        outs = [f"{folder}/w{i}.json" for i in range(workers)]
        logs = [open(f"{folder}/w{i}.log", "w+") for i in range(workers)]  # noqa: SIM115
        processes = [
            subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "timed_worker.py"), out, "worker",
                 *([] if warm else ["--exit-when-idle"]), "--poll", "0.05",
                 "--batch-size", str(BATCH)],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )
            for out, log in zip(outs, logs, strict=True)
        ]  # fmt: skip
        window = _timed_when_ready(db, processes, count) if warm else None
        for process in processes:
            process.wait()
        exited = time.time()
        server_cpu = database_server_cpu() - server_before if kind == "postgresql" else 0.0
        written = rows_written(db.url, since=written_before) if counting else None
        handed = []
        for process, log in zip(processes, logs, strict=True):
            log.seek(0)
            text = log.read()
            log.close()
            found = re.search(r"handing over (\d+) emails", text)
            if process.returncode != 0 or found is None:  # a failed run is no figure
                tail = "\n".join(line for line in text.splitlines()[-60:])
                raise SystemExit(f"a worker failed (exit {process.returncode}):\n{tail}")
            handed.append(int(found.group(1)))
        counted = [json.loads(Path(out).read_text()) for out in outs]
        began, ended = window or (min(c["ready_at"] for c in counted), exited)
        rate = count / (ended - began)
        return Run(
            kind, workers, rate, handed,
            [c["cpu_seconds"] for c in counted], [c["db_seconds"] for c in counted],
            [c["statements"] for c in counted], [c["commits"] for c in counted], server_cpu,
            sum((Counter(c["by_text"]) for c in counted), Counter()) if statements else None,
            sum((Counter(c["waited"]) for c in counted), Counter()) if statements else None,
            written,
        )  # fmt: skip


def _timed_when_ready(
    db: Database, processes: list[subprocess.Popen[bytes]], count: int
) -> tuple[float, float]:
    """--start-when-ready: once every worker has beaten, the seeded emails fall due now;
    returns that moment and the last email's recording as sent (the database's
    instants), then stops the workers (SIGTERM: each finishes what it holds)."""

    wait_until_ready(db, processes)
    due = datetime.now(UTC)
    with db.transaction() as session:
        pending = StepRun.status == StepRunStatus.PENDING
        session.execute(update(StepRun).where(pending).values(due_at=due))
    sent = select(func.count()).where(Message.status == MessageStatus.SENT).select_from(Message)
    while True:
        with db.read() as session:
            done = session.scalar(sent)
            if done >= count:
                last = session.scalar(select(func.max(Message.sent_at)))
                break
        check_running(processes)
        time.sleep(_until_next_look(done, count, time.time() - due.timestamp()))
    for process in processes:
        process.send_signal(signal.SIGTERM)
    return due.timestamp(), last.timestamp()


def _until_next_look(done: int, count: int, elapsed: float) -> float:
    """How long to wait before counting the sent emails again: half the time the rest
    should take at the rate so far, between 20 ms and 1 s. The count reads every
    message (on PostgreSQL 7 ms and 6,300 buffers at 20,000 emails): looked at every
    20 ms, it took the cores from the workers and was counted as the server's CPU an
    email (docs/benchmarks.md, *Twenty-seventh session*). When it looks does not change
    the figure: the run ends at the last email's own `sent_at`."""
    if done <= 0:
        return 0.1
    rest = (count - done) * elapsed / done
    return min(max(rest / 2, 0.02), 1.0)


def rows_written(
    url: str, since: dict[str, tuple[int, ...]] | None = None
) -> dict[str, tuple[int, ...]]:
    """Rows each table of this database had inserted, updated (of which HOT: no index
    touched), deleted, and its number of indexes; under "WAL", the bytes and records
    the whole server wrote to its log (nothing else may use it during a run). With
    `since`, the counts since then. A backend reports its counts when it ends, a moment
    after its client has gone: read until two readings agree."""
    query = (
        "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, "
        "(SELECT count(*) FROM pg_index WHERE indrelid = relid) FROM pg_stat_user_tables"
    )
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as connection:
        previous: dict[str, tuple[int, ...]] | None = None
        for _ in range(20):
            connection.execute("SELECT pg_stat_clear_snapshot()")
            now = {row[0]: tuple(row[1:]) for row in connection.execute(query)}
            wal = connection.execute("SELECT wal_bytes, wal_records FROM pg_stat_wal").fetchone()
            now["WAL"] = (int(wal[0]), int(wal[1]))
            if now == previous:
                break
            previous = now
            time.sleep(0.1)
    if since is None:
        return now
    changed: dict[str, tuple[int, ...]] = {}
    for table, counts in now.items():
        before = since.get(table, (0,) * len(counts))
        moved = 2 if table == "WAL" else 4  # a table's last figure is its indexes: kept
        changed[table] = (
            *(n - b for n, b in zip(counts[:moved], before[:moved], strict=True)),
            *counts[moved:],
        )
    return changed


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU of a process (this one by default), children excluded."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def per_email(values: list[float], handed: list[int]) -> str:
    """Each worker's figure per email it handed over, in milliseconds."""
    return " ".join(f"{1000 * v / max(n, 1):.2f}" for v, n in zip(values, handed, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--workers", default="1",
        help="worker processes, or a list (1,2,4): one run each on --db; with PostgreSQL, "
        "one SQLite worker runs first as the reference",
    )  # fmt: skip
    parser.add_argument(
        "--mailboxes", type=int, default=None,
        help="sending mailboxes, each its own connection (default: 2 per worker, at least 8)",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="repeat the baseline and the runs this many times, alternating, and print "
        "each ratio's median: on a shared machine one pair of runs is mostly noise",
    )  # fmt: skip
    parser.add_argument(
        "--statements", type=int, default=0, metavar="K",
        help="also print each run's K most frequent statements, per email (what a commit "
        "of the hand-over runs, and how often) with the time waited for each; counting "
        "them costs the workers some CPU",
    )  # fmt: skip
    parser.add_argument(
        "--steps", type=int, default=1,
        help="emails in each enrollment's sequence (the first due): with more than one, "
        "every send also schedules the next step, as most sends of a real sequence do",
    )  # fmt: skip
    parser.add_argument(
        "--start-when-ready", action="store_true",
        help="make the emails due once every worker is ready, and time the run from then "
        "to the last email recorded as sent: the workers' throughput without their start, "
        "their exit, or the first one's seconds alone while the others start",
    )  # fmt: skip
    parser.add_argument(
        "--writes", action="store_true",
        help="PostgreSQL: also print the rows each table had written, per email, and the "
        "write-ahead log's bytes and records per email (whole server: run it alone)",
    )  # fmt: skip
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    if args.db == "sqlite" and counts != [1]:
        parser.error("SQLite runs exactly one worker")
    plan = [("sqlite", 1)] if args.db == "postgresql" else []
    plan += [(args.db, w) for w in counts]
    mailboxes = args.mailboxes or max(8, 2 * max(counts))
    rounds: list[tuple[float, list[Run]]] = []
    with sink_process() as (host, port, counted):
        sink_base = sink_engine = 0.0
        for number in range(1, args.rounds + 1):
            sink_before = cpu_seconds(counted["pid"])
            base = baseline(host, port, args.n)
            sink_between = cpu_seconds(counted["pid"])
            print(f"round {number}: baseline {base:.0f} messages/s", flush=True)
            runs = []
            for kind, workers in plan:
                options = {
                    "statements": args.statements > 0, "writes": args.writes,
                    "steps": args.steps, "warm": args.start_when_ready,
                }  # fmt: skip
                sink_before_run = cpu_seconds(counted["pid"])
                runs.append(engine(host, port, args.n, kind, workers, mailboxes, **options))
                runs[-1].sink_cpu = cpu_seconds(counted["pid"]) - sink_before_run
                print(f"  {kind} x{workers}: {runs[-1].rate:.0f} messages/s", flush=True)
            sink_after = cpu_seconds(counted["pid"])
            sink_base += sink_between - sink_before
            sink_engine += (sink_after - sink_between) / len(plan)
            rounds.append((base, runs))
    expected = args.n * (1 + len(plan)) * args.rounds
    per_message = 1000 / args.n / args.rounds
    print(f"sink received {counted['messages']} of {expected} messages")
    print(
        f"sink CPU per message: {sink_base * per_message:.3f} ms (baseline), "
        f"{sink_engine * per_message:.3f} ms (engine runs)"
    )
    for number, (base, runs) in enumerate(rounds, 1):
        print(f"\nround {number}: baseline smtplib loop {base:.0f} messages/s; {mailboxes} "
              f"mailboxes, N={args.n}; per worker, per email it handed over:")  # fmt: skip
        table(base, runs)
        for run in runs if args.statements else []:
            print(f"\n{run.db} x{run.workers}: statements per email, the {args.statements} "
                  "most frequent, and the microseconds an email waited for each "
                  "(all workers)")  # fmt: skip
            waited = Counter(run.waited)
            for text, n in Counter(run.by_text).most_common(args.statements):
                print(f"  {n / args.n:6.3f}  {waited[text] / args.n:7.1f} µs  {text}")
        for run in runs if args.writes else []:
            print_writes(run, args.n)
    if args.rounds > 1:
        print(f"\nmedians of {args.rounds} rounds (each ratio within its own round):")
        bases = [base for base, _ in rounds]
        print(f"{'baseline':<16} {statistics.median(bases):.0f} messages/s "
              f"({', '.join(f'{b:.0f}' for b in bases)})")  # fmt: skip
        for i, (kind, workers) in enumerate(plan):
            to_base = [runs[i].rate / base for base, runs in rounds]
            to_first = [runs[i].rate / runs[0].rate for _, runs in rounds]
            rates = [runs[i].rate for _, runs in rounds]
            cpu = [1000 * sum(runs[i].cpu) / args.n for _, runs in rounds]
            print(
                f"{kind + ' x' + str(workers):<16} {statistics.median(rates):.0f} messages/s, "
                f"CPU {statistics.median(cpu):.2f} ms an email (all its workers)"
            )
            print(
                f"{'':<16} ÷ base {statistics.median(to_base):.2f} "
                f"({', '.join(f'{r:.2f}' for r in to_base)})   ÷ 1st "
                f"{statistics.median(to_first):.2f} ({', '.join(f'{r:.2f}' for r in to_first)})"
            )


def print_writes(run: Run, count: int) -> None:
    """What a run wrote to PostgreSQL, per email (--writes)."""
    if run.writes is None:
        return
    wal_bytes, wal_records = run.writes["WAL"]
    print(f"\n{run.db} x{run.workers}: write-ahead log per email {wal_bytes / count:.0f} bytes, "
          f"{wal_records / count:.1f} records; rows written per email, by table:")  # fmt: skip
    print(f"  {'table':<22}{'inserted':>9}{'updated':>9}{'of them HOT':>13}{'deleted':>9}"
          f"{'indexes':>9}")  # fmt: skip
    tables = [(t, c) for t, c in run.writes.items() if t != "WAL" and any(c[:4])]
    for name, (ins, upd, hot, deleted, indexes) in sorted(tables, key=lambda t: -sum(t[1][:4])):
        print(f"  {name:<22}{ins / count:>9.2f}{upd / count:>9.2f}{hot / count:>13.2f}"
              f"{deleted / count:>9.2f}{indexes:>9}")  # fmt: skip


def table(base: float, runs: list[Run]) -> None:
    reference = runs[0].rate
    print(f"{'run':<16}{'msg/s':>7}{'÷ base':>8}{'÷ 1st':>7}  {'emails':<24}{'CPU ms':<26}"
          f"{'DB wait ms':<26}{'stmts':<26}{'commits':<26}DB server CPU ms")  # fmt: skip
    for run in runs:
        print(
            f"{run.db + ' x' + str(run.workers):<16}{run.rate:>7.0f}{run.rate / base:>8.2f}"
            f"{run.rate / reference:>7.2f}  {' '.join(map(str, run.handed)):<24}"
            f"{per_email(run.cpu, run.handed):<26}{per_email(run.db_seconds, run.handed):<26}"
            f"{per_email([s / 1000 for s in run.statements], run.handed):<26}"
            f"{per_email([c / 1000 for c in run.commits], run.handed):<26}"
            f"{1000 * run.server_cpu / max(sum(run.handed), 1):.2f}"
        )
    cores = len(os.sched_getaffinity(0))
    print(f"every process's CPU an email (workers + database server + sink), and the rate "
          f"it allows on this machine's {cores} cores:")  # fmt: skip
    for run in runs:
        handed = max(sum(run.handed), 1)
        total = run.cpu_an_email()
        print(
            f"{run.db + ' x' + str(run.workers):<16}{1000 * total:>6.2f} ms "
            f"({1000 * sum(run.cpu) / handed:.2f} + {1000 * run.server_cpu / handed:.2f} + "
            f"{1000 * run.sink_cpu / handed:.2f}): at most {cores / total:.0f} msg/s; "
            f"this run {run.rate:.0f}, {run.rate * total / cores:.0%} of the cores"
        )
    print("with a core for each worker (the database server and the sink on cores of "
          "their own), what each run's CPU figures allow: an upper bound, not a rate")  # fmt: skip
    for run in runs:
        bound = workers_bound(run)
        server = run.server_cpu / max(sum(run.handed), 1)
        cores_used = f"; at that rate the database server would use {bound * server:.1f} cores"
        print(
            f"{run.db + ' x' + str(run.workers):<16}at most {bound:.0f} msg/s from the "
            f"workers{cores_used if run.db == 'postgresql' else ''}"
        )


def workers_bound(run: Run) -> float:
    """The emails a second the run's workers could hand over if each had a core to
    itself: each one's emails over its CPU seconds, added up. What issue 15 asks to read
    off a 2-core machine about more cores. A bound from CPU alone: the waits for the
    database's and the SMTP server's answers are not in it. On more cores a worker's CPU
    an email would also fall: here it includes what the queue for two cores costs it
    (task switches, the interpreter lock taken back from another thread)."""
    return sum(handed / cpu for handed, cpu in zip(run.handed, run.cpu, strict=True) if cpu > 0)


if __name__ == "__main__":
    main()
