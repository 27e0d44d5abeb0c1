"""Team reports on a large installation against a small one, in one run.

    .venv/bin/python bench/reports.py [--db sqlite|postgresql] [--repeat 20]
        [--messages 1000000] [--enrollments 100000] [--recent 10000]

Two databases hold the same last 30 days (`--recent` emails, a tenth as many
enrollments, their opens, replies, meetings and calls); the large one also holds the
history before them, up to `--messages` emails and `--enrollments` enrollments. Each
report of the last 30 days (per sequence, per rep by either basis, per step, the daily
series) is requested `--repeat` times over HTTP on each; the script prints p95 per
report and the ratio large / small. The goal (issue 17): every ratio at most 2, because
a report reads its period through indexes on its time columns, not the history.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

from common import scratch_database
from fastapi.testclient import TestClient
from tests.support.report_history import seed_history, team

from cadenza.config import Settings
from cadenza.domain.clock import FrozenClock
from cadenza.services.accounts.users import create_token, create_user
from cadenza.services.context import Context
from cadenza.web.app import create_app


def reports(sequence_id: int) -> dict[str, str]:
    return {
        "per sequence": "/api/v1/reports/sequence",
        "per rep (enrolled by)": "/api/v1/reports/rep",
        "per rep (mailbox owner)": "/api/v1/reports/rep?basis=mailbox_owner",
        "per step": f"/api/v1/reports/step?sequence={sequence_id}",
        "daily replies, meetings": "/api/v1/reports/sequence/daily",
    }


def build(db, now, *, recent: int, messages: int, enrollments: int) -> tuple[TestClient, dict]:
    settings = Settings(database_url="sqlite://", default_timezone="UTC", password_hash_cost=4)
    ctx = Context(db=db, clock=FrozenClock(now), settings=settings)
    admin = create_user(ctx, "boss@example.com", role="admin")
    token = create_token(ctx, admin.id, "bench").token
    history = team(ctx, reps=8, sequences=20)
    window = now - timedelta(days=30)
    started = time.perf_counter()
    older = messages - recent
    if older > 0:
        first = window - timedelta(days=3 * 365)
        seed_history(ctx, history, enrollments=enrollments - recent // 10, messages=older,
                     start=first, end=window - timedelta(hours=1))  # fmt: skip
    seed_history(ctx, history, enrollments=recent // 10, messages=recent,
                 start=window + timedelta(hours=1), end=now - timedelta(hours=1))  # fmt: skip
    print(f"  seeded {messages:,} emails in {time.perf_counter() - started:.0f} s", flush=True)
    client = TestClient(create_app(ctx))
    client.headers["Authorization"] = f"Bearer {token}"
    return client, reports(history.sequence_ids[0])


def p95(client: TestClient, path: str, repeat: int) -> float:
    client.get(path).raise_for_status()  # warm: the first request compiles and caches
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(path).raise_for_status()
        timings.append(time.perf_counter() - started)
    return statistics.quantiles(timings, n=20)[-1] if len(timings) > 1 else timings[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--enrollments", type=int, default=100_000)
    parser.add_argument("--recent", type=int, default=10_000)
    args = parser.parse_args()
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    results: dict[str, dict[str, float]] = {}
    for label, messages, enrollments in (
        ("small", args.recent, args.recent // 10),
        ("large", args.messages, args.enrollments),
    ):
        print(f"{label}: {messages:,} emails, {enrollments:,} enrollments ({args.db})", flush=True)
        with scratch_database(args.db) as db:
            client, paths = build(
                db, now, recent=args.recent, messages=messages, enrollments=enrollments
            )
            results[label] = {name: p95(client, path, args.repeat) for name, path in paths.items()}
    print(f"\n{'report':<26}{'small p95':>12}{'large p95':>12}{'ratio':>8}")
    for name in results["small"]:
        small, large = results["small"][name], results["large"][name]
        print(f"{name:<26}{small * 1000:>10.1f}ms{large * 1000:>10.1f}ms{large / small:>8.2f}")


if __name__ == "__main__":
    main()
