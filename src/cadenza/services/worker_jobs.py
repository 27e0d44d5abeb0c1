"""Everything the worker asks of services, in one small facade.

The worker (engine/worker.py) is a loop around this module and nothing else of services,
the way a job queue's worker talks only to its job manager: the clocked jobs of a tick
(recovery, out-of-office resumes, automation rules, list jobs, task creation, the
retention policy), the
delivery protocol (claim, hand over, record, release) and the moments the loop must
wake up for. Keeping the list here makes the worker's contract with the rest of the
house readable in one screen, and lets the areas behind it move without touching the
loop (the layer contract in pyproject.toml holds the worker to it).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from cadenza.domain.transport_settings import TransportSettings
from cadenza.services import retention
from cadenza.services.accounts.mailboxes import transport_settings_of
from cadenza.services.automation import runner as automation
from cadenza.services.context import Context
from cadenza.services.counters import upkeep as counter_upkeep
from cadenza.services.delivery import affinity, claims, recovery
from cadenza.services.delivery.claims import ClaimedEmail
from cadenza.services.delivery.handover import (
    Finished,
    HandOver,
    hand_over,
    hand_over_many,
    record_outcomes,
)
from cadenza.services.delivery.recovery import release_unsent
from cadenza.services.enrollment import list_jobs, reminders, tasks
from cadenza.services.events_out import webhooks
from cadenza.services.monitoring import heartbeat as monitoring
from cadenza.services.monitoring.heartbeat import HEARTBEAT_SECONDS
from cadenza.services.oauth import tokens as oauth_tokens
from cadenza.services.signals import effects as signals

__all__ = [
    "HEARTBEAT_SECONDS",
    "ClaimedEmail",
    "Finished",
    "HandOver",
    "claim_due",
    "hand_over",
    "hand_over_many",
    "has_due_work",
    "heartbeat",
    "mailbox_settings_of",
    "next_wakeup",
    "record_outcomes",
    "release_unsent",
    "run_clocked_jobs",
]


def run_clocked_jobs(ctx: Context, batch_size: int) -> tuple[int, list[int]]:
    """The jobs of a tick that come before claiming, in the order that lets what they
    make due be claimed in the same tick: dead claims taken back, out-of-office pauses
    that ended resumed, automation rules and list jobs run (they enroll), due tasks
    created, the users' daily task digests recorded; then the retention policy and the
    counters' fold (they move nothing). Returns (step runs moved, enrollments resumed)."""
    moved = recovery.recover_expired(ctx)
    resumed = signals.resume_due(ctx)
    moved += len(resumed)
    moved += automation.run_pending(ctx) + list_jobs.run_due(ctx)
    moved += tasks.create_due_tasks(ctx, batch_size)
    reminders.make_due_digests(ctx)  # claimed below with the mailboxes' other emails
    retention.run_due(ctx, batch_size)  # off by default; at most once per interval
    counter_upkeep.fold_due(ctx)  # sequences' counter deltas summed: every few minutes
    return moved, resumed


# Mailboxes claimed in one transaction: enough to share its cost, few enough that the
# worker hands over what falls due in between (and, on PostgreSQL, that other workers
# find unlocked mailboxes to claim).
MAILBOXES_PER_TRANSACTION = 50


# A worker is counted as live (in the others' shares of the mailboxes) this long after
# its last heartbeat.
LIVE_WITHIN = timedelta(seconds=3 * HEARTBEAT_SECONDS)
# A mailbox is left to the live worker that claimed it this long after its last claim:
# longer than the spacing of a mailbox at the usual limits (6 s at 10 a minute), short
# enough that a worker over its share lets its extra mailboxes go soon.
STICKY_FOR = timedelta(seconds=30)


def claim_due(
    ctx: Context,
    worker_id: str,
    *,
    batch_size: int,
    horizon: timedelta,
    lease: timedelta,
    mailboxes: int = 50,
    held_enough: Collection[int] = (),
    claimed: Callable[[list[ClaimedEmail]], None] | None = None,
    let_go: Callable[[list[int]], None] | None = None,
) -> list[ClaimedEmail]:
    """Emails due within the horizon of up to `mailboxes` mailboxes with work and a free
    send slot within it — of those, the ones this worker should serve (delivery/
    affinity.py) — claimed under a lease, in send-slot order (never before they are
    due: claims.claim_emails). `claimed` is called with each
    transaction's claims (MAILBOXES_PER_TRANSACTION mailboxes) as they are made: a worker
    hands over what is due meanwhile instead of waiting for the whole round. `let_go` is
    called, before any claim, with the mailboxes this worker no longer keeps (over its
    share): it gives back what it holds of them, so that the others take them now.

    `held_enough`: mailboxes of this worker's whose queued emails already fill a
    horizon (engine/worker.py): still its own (not let go), but not claimed this round,
    and they take no other mailbox's place in it.
    """
    due: list[ClaimedEmail] = []
    slot_before = ctx.clock.now() + horizon
    chosen = affinity.mailboxes_for(
        ctx,
        worker_id,
        lambda n: claims.mailboxes_with_due_email(
            ctx, n, slot_before=slot_before, due_before=slot_before
        ),
        mailboxes + len(held_enough),
        live_within=LIVE_WITHIN,
        sticky_for=STICKY_FOR,
        let_go=let_go,
    )
    waiting = [mailbox for mailbox in chosen.mailboxes if mailbox not in held_enough][:mailboxes]
    for start in range(0, len(waiting), MAILBOXES_PER_TRANSACTION):
        made = claims.claim_emails(
            ctx,
            waiting[start : start + MAILBOXES_PER_TRANSACTION],
            worker_id,
            batch_size=batch_size,
            horizon=horizon,
            lease=lease,
            choice=chosen,
        )
        if claimed is not None and made:
            claimed(made)
        due += made
    due.sort(key=lambda c: c.slot)
    return due


def mailbox_settings_of(ctx: Context, mailbox_ids: Collection[int]) -> dict[int, TransportSettings]:
    """What the worker connects with, for each of these mailboxes: a plain value, never
    the stored mailbox. OAuth access tokens about to expire are renewed first (found in
    one statement; a refused renewal disconnects the mailbox, and its claimed emails
    wait at hand-over), then the settings are read in another."""
    oauth_tokens.refresh_due(ctx, mailbox_ids)
    return transport_settings_of(ctx, mailbox_ids)


def next_wakeup(ctx: Context) -> datetime | None:
    """The next moment a tick has something to do: an email or reminder falls due or a
    mailbox gets room (delivery), an out-of-office pause ends (signals), or a user's
    digest hour comes (enrollment/reminders.py)."""
    now = ctx.clock.now()
    moments = [
        recovery.next_wakeup(ctx),
        signals.next_resume_at(ctx),
        reminders.next_digest_moment(ctx),
    ]
    future = [m for m in moments if m is not None and m > now]
    return min(future) if future else None


def has_due_work(ctx: Context, *, webhooks_too: bool) -> bool:
    """Due steps, ended out-of-office pauses, or (when the worker dispatches them) due
    webhook deliveries: what keeps a worker started with exit-when-idle going."""
    now = ctx.clock.now()
    moments = [recovery.next_due_at(ctx), signals.next_resume_at(ctx)]
    if webhooks_too:
        moments.append(webhooks.next_due_at(ctx))
    return any(m is not None and m <= now for m in moments)


def heartbeat(ctx: Context, worker_id: str, started_at: datetime, metrics: dict[str, Any]) -> None:
    """The worker's sign of life and its metrics, for /readyz and /metrics (monitoring)."""
    monitoring.beat(ctx, worker_id, started_at, metrics)
