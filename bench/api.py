"""API latency and throughput against a bare endpoint on the same server, in one run.

    .venv/bin/python bench/api.py [--requests 1000] [--rounds 3] [--concurrency 32]
                                  [--db sqlite|postgresql]

Serves Cadenza's app (plus a constant-JSON endpoint, the baseline) with uvicorn in a
separate process, as `cadenza serve` does (one process, the app's own middleware; idle
connections kept for 60 s rather than 5, so that a client starved of CPU on a busy
machine does not send into a connection the server is closing), then
drives each endpoint with 32 concurrent clients: the constant endpoint,
`GET /api/v1/enrollments/{id}`, and a 50-contact enroll (dry run, so every request does
the full validation and projection without using up contacts).

The same client code drives all three. Each endpoint is warmed up first (one request
per client, untimed: connections opened, statements compiled), and the three take turns
for `--rounds` rounds, so that load from elsewhere on the machine falls on the baseline
and the endpoints alike; each ratio is taken against the baseline of its own round.
Prints, per endpoint, the median over the rounds of p50/p99 latency, requests/s, the
server process's CPU time per request, and the ratios to the baseline. On a machine
other work keeps busy, every request waits for a core and the latency ratios shrink
towards 1; the CPU ratio is what the request itself costs the server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time

import httpx
import psutil
from common import ROOT, scratch_database

from cadenza.config import Settings
from cadenza.domain.clock import SystemClock
from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.accounts.users import create_token, create_user
from cadenza.services.context import Context
from cadenza.services.crm.contacts import create_contact
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.services.sequences.catalog import create_sequence


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare(ctx: Context) -> tuple[str, int, int, list[int]]:
    user = create_user(ctx, "bench@example.com", firstname="Ben", timezone="Europe/Berlin")
    create_mailbox(ctx, user.id, "bench@example.com")
    token = create_token(ctx, user.id, "bench").token
    steps = [
        {"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>One</p>"},
        {"type": "email", "delay_days": 3, "thread_with_step": 1, "body": "<p>Two</p>"},
        {"type": "task", "delay_days": 2, "task_title": "Call {{ contact.firstname }}"},
    ]
    sequence = create_sequence(ctx, user.id, "Bench", settings={"follow_up_days": "weekdays"},
                               steps=steps)  # fmt: skip
    contact_ids = [
        create_contact(ctx, {"email": f"b{i}@client.example", "firstname": f"B{i}"}).id
        for i in range(51)
    ]
    [result] = enroll(ctx, EnrollRequest(sequence.id, user.id, [ContactRequest(contact_ids[50])]))
    return token, sequence.id, result.enrollment_id, contact_ids[:50]


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def drive(
    server: psutil.Process, url: str, method: str, total: int, concurrency: int, headers, body=None
):
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits) as client:

        async def one_client(queue, timed: bool) -> None:
            for _ in queue:
                started = time.perf_counter()
                response = await client.request(method, url, json=body)
                if timed:
                    latencies.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text

        warm_up = iter(range(concurrency))
        await asyncio.gather(*(one_client(warm_up, False) for _ in range(concurrency)))
        queue = iter(range(total))
        cpu, started = cpu_seconds(server), time.perf_counter()
        await asyncio.gather(*(one_client(queue, True) for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(server) - cpu
    latencies.sort()
    return {
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "rps": total / elapsed,
        "cpu": cpu / total * 1000,  # the server's CPU time per request, ms
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="per endpoint and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with scratch_database(args.db) as db:
        ctx = Context(db=db, clock=SystemClock(), settings=Settings(database_url=db.url))
        token, sequence_id, enrollment_id, contact_ids = prepare(ctx)
        port = free_port()
        env = {**os.environ, "CADENZA_DATABASE_URL": db.url, "PYTHONPATH": "src:bench"}
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api_server:app", "--port", str(port),
             "--log-level", "warning", "--timeout-keep-alive", "60"],
            env=env, cwd=ROOT,
        )  # fmt: skip
        process = psutil.Process(server.pid)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            headers = {"Authorization": f"Bearer {token}"}
            enroll_body = {"contacts": [{"contact_id": i} for i in contact_ids], "dry_run": True}
            runs = {
                "constant JSON (baseline)": ("GET", f"{base}/constant", None, args.requests),
                "GET /enrollments/{id}": (
                    "GET", f"{base}/api/v1/enrollments/{enrollment_id}", None, args.requests,
                ),
                "enroll 50 contacts (dry run)": (
                    "POST", f"{base}/api/v1/sequences/{sequence_id}/enrollments", enroll_body,
                    max(args.requests // 10, args.concurrency),
                ),
            }  # fmt: skip
            rounds = []
            for _ in range(args.rounds):
                measured = {
                    name: asyncio.run(
                        drive(process, url, method, total, args.concurrency, headers, body)
                    )
                    for name, (method, url, body, total) in runs.items()
                }
                baseline = measured["constant JSON (baseline)"]
                for r in measured.values():
                    r["rps ratio"] = r["rps"] / baseline["rps"]
                    r["p50 ratio"] = r["p50"] / baseline["p50"]
                    r["cpu ratio"] = r["cpu"] / baseline["cpu"]
                rounds.append(measured)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"{args.db}, {args.concurrency} concurrent clients, median of {args.rounds} rounds")
    for name in runs:
        r = {key: statistics.median(m[name][key] for m in rounds) for key in rounds[0][name]}
        each = " ".join(f"{m[name]['p50 ratio']:.2f}" for m in rounds)
        print(
            f"{name:29} p50 {r['p50']:6.1f} ms  p99 {r['p99']:6.1f} ms  {r['rps']:4.0f} req/s"
            f"  server CPU {r['cpu']:5.2f} ms/req  rps ratio {r['rps ratio']:.2f}"
            f"  CPU ratio {r['cpu ratio']:.2f}  p50 ratio {r['p50 ratio']:.2f} (rounds: {each})"
        )


if __name__ == "__main__":
    main()
