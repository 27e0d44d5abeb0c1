"""Each worker's sign of life: written from its tick, at most every HEARTBEAT_SECONDS.

The row carries the worker's last tick and a snapshot of its own metrics (counters and
histograms it keeps in memory, engine/metrics.py), so that a web process on another
host can report them. One small upsert every few seconds per worker: cheap next to
the tick's own work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from cadenza.services.context import Context
from cadenza.store.models import WorkerHeartbeat

HEARTBEAT_SECONDS = 5.0
# A worker silent this long is gone (stopped, crashed): its row is deleted.
FORGET_AFTER = timedelta(days=1)
# /metrics reports the counters of workers heard from this recently only.
REPORT_WITHIN = timedelta(minutes=15)


@dataclass(frozen=True)
class WorkerBeat:
    worker_id: str
    started_at: datetime
    last_tick_at: datetime
    metrics: dict[str, Any]


def beat(ctx: Context, worker_id: str, started_at: datetime, metrics: dict[str, Any]) -> None:
    """Records that `worker_id` ticked now, with its metrics; forgets long-gone workers."""
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        row = session.get(WorkerHeartbeat, worker_id)
        if row is None:
            session.add(
                WorkerHeartbeat(
                    id=worker_id, started_at=started_at, last_tick_at=now, metrics=metrics
                )
            )
        else:
            row.last_tick_at, row.metrics = now, metrics
        session.execute(
            delete(WorkerHeartbeat).where(WorkerHeartbeat.last_tick_at < now - FORGET_AFTER)
        )


def recent(ctx: Context, within: timedelta = REPORT_WITHIN) -> list[WorkerBeat]:
    """Workers heard from within `within`, most recent first."""
    since = ctx.clock.now() - within
    with ctx.db.read() as session:
        rows = session.scalars(
            select(WorkerHeartbeat)
            .where(WorkerHeartbeat.last_tick_at >= since)
            .order_by(WorkerHeartbeat.last_tick_at.desc(), WorkerHeartbeat.id)
        )
        return [WorkerBeat(r.id, r.started_at, r.last_tick_at, r.metrics) for r in rows]


def last_tick(ctx: Context) -> datetime | None:
    """The most recent tick of any worker, however long ago."""
    with ctx.db.read() as session:
        return session.scalar(
            select(WorkerHeartbeat.last_tick_at)
            .order_by(WorkerHeartbeat.last_tick_at.desc())
            .limit(1)
        )
