"""Which of the mailboxes with due email a worker claims, when several workers run.

Two rules, for PostgreSQL's many workers (on SQLite one worker runs, and both rules
let it take everything):

- **A mailbox sticks to one worker.** A mailbox whose emails another worker holds
  (claimed, lease not expired), or that another live worker claimed within
  `sticky_for`, is left to it. Each mailbox's emails then leave over one worker's one
  connection (not one per worker: 2,000 mailboxes make 2,000 connections, not 3,388),
  two workers never queue for the same mailbox row at hand-over, and the worker that
  sent the last email knows when the next may leave. The claim notes its worker on the
  mailbox row (claims.py): a mailbox at its per-minute limit holds nothing between
  two sends, and without the note it changed workers about every other email (a new
  SMTP connection each time: bench/latency.py). When that worker has stopped claiming
  it (sent what it held, or over its share), or died, the mailbox is free for any
  worker again.
- **No worker takes more than its share.** Of the mailboxes with work, a worker takes
  new ones only up to its fair part, counting the live workers by their heartbeats:
  the first worker to start must not claim every mailbox and leave the others idle.
  Its own mailboxes come first within its share; those beyond it are let go: what it
  claimed of them and has not handed over goes back (the worker's `let_go`, in
  engine/sends.py), so they pass to the others within a claim round rather than once
  they drain. A mailbox it let go is no longer its own, even while its last email is
  in flight: it is not chosen again in its place, only taken back if it comes free.

The rules only choose among mailboxes: the claim itself still holds each mailbox
(skipping those another claim holds) and grants its throttle's slots, so nothing here
can send an email twice or past its limits; a wrong guess only leaves work for the
next round. One guess the claim does check (`Choice.taken_meanwhile`): two workers
that choose at once both see the same mailboxes free, and each would claim them one
after the other. Started together, two workers both took the first four of eight
mailboxes and left the other four idle for a second, and for two more seconds both
sent emails of the same four (bench/engine.py, docs/benchmarks.md, the thirtieth
session). Within its transaction, the claim leaves out a mailbox that another worker
noted as its own since this one chose it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update

from cadenza.domain.enums import StepRunStatus
from cadenza.services.context import Context
from cadenza.store.models import Mailbox, StepRun, WorkerHeartbeat


@dataclass(frozen=True)
class Choice:
    """The mailboxes a worker claims, in claim order, and what it saw of them."""

    mailboxes: list[int]
    sticky_for: timedelta
    # a chosen mailbox noted by another worker, seen as free all the same (that worker
    # is no longer live): the note the choice was made over
    notes: dict[int, str] = field(default_factory=dict)

    def taken_meanwhile(self, mailbox: Mailbox, worker_id: str, now: datetime) -> bool:
        """Another worker noted this mailbox as its own (a claim that committed) after
        this choice was made: read by the claim once it holds the mailbox."""
        noted = mailbox.claimed_by
        return (
            noted is not None
            and noted != worker_id
            and noted != self.notes.get(mailbox.id)
            and mailbox.claimed_at is not None
            and mailbox.claimed_at > now - self.sticky_for
        )


def mailboxes_for(
    ctx: Context,
    worker_id: str,
    candidates_of: Callable[[int], list[int]],
    limit: int,
    *,
    live_within: timedelta,
    sticky_for: timedelta,
    let_go: Callable[[list[int]], None] | None = None,
) -> Choice:
    """Up to `limit` mailboxes with due email this worker claims, in claim order: the
    ones another worker holds left out, and no more than its share of all the
    mailboxes with work, its own first. A worker that holds more than its share (it
    started first, or others started since) lets the rest go: `let_go` is told which
    (their notes cleared), so that the worker gives back what it claimed of them and
    has not handed over, and the others take them at their next round.

    `candidates_of(n)` lists the first n mailboxes with due email in claim order; it is
    asked for `limit` more than the others hold, so the others' mailboxes (most overdue
    or not) never crowd this worker's own out of the list. A worker counts as live
    `live_within` after its last heartbeat (the monitoring area's rhythm, passed down by
    the worker's facade: delivery does not call monitoring)."""
    now = ctx.clock.now()
    with ctx.db.read() as session:
        holders = list(
            session.execute(
                select(StepRun.mailbox_id, StepRun.locked_by)
                .where(StepRun.status == StepRunStatus.SENDING, StepRun.locked_until > now)
                .group_by(StepRun.mailbox_id, StepRun.locked_by)
            ).all()
        )
        noted = session.execute(
            select(Mailbox.id, Mailbox.claimed_by).where(
                Mailbox.claimed_at > now - sticky_for, Mailbox.claimed_by.is_not(None)
            )
        ).all()
        holders += noted
        live = set(
            session.scalars(
                select(WorkerHeartbeat.id).where(
                    WorkerHeartbeat.last_tick_at >= now - live_within,
                    WorkerHeartbeat.id != worker_id,
                )
            )
        )
    others = len(live)
    mine = {mailbox for mailbox, holder in holders if holder == worker_id}
    # only a live worker keeps its mailboxes: a dead one's lease must not hold back the
    # mailbox's other emails until it runs out (recovery takes the dead claims back)
    theirs = {mailbox for mailbox, holder in holders if holder in live} - mine
    candidates = candidates_of(limit + len(theirs))
    workers = 1 + others
    share = math.ceil(len({*candidates, *mine, *theirs}) / workers)
    room = min(share - len(mine - set(candidates)), limit)  # held, nothing due: its load too
    # a mailbox it let go is not its own while its last email is in flight: not chosen
    # again in place of one it kept (whose queued emails it would then give back)
    noted_mine = {mailbox for mailbox, holder in noted if holder == worker_id}
    own = [mailbox for mailbox in candidates if mailbox in mine and mailbox in noted_mine]
    free = [mailbox for mailbox in candidates if mailbox not in mine and mailbox not in theirs]
    chosen = set((own + free)[: max(room, 0)])
    released = _let_go(ctx, worker_id, [m for m in own if m not in chosen])
    if released and let_go is not None:
        let_go(released)
    others_notes = {
        mailbox: holder
        for mailbox, holder in noted
        if mailbox in chosen and holder is not None and holder != worker_id
    }
    return Choice([m for m in candidates if m in chosen], sticky_for, others_notes)


def _let_go(ctx: Context, worker_id: str, mailbox_ids: list[int]) -> list[int]:
    """Its own mailboxes beyond its share stop being this worker's: their note is
    cleared, so they pass to the others as soon as what it holds of them has left (an
    email in flight; the rest it gives back), not `sticky_for` after its last claim.
    Without this, a worker that claimed every mailbox before the others started kept
    all but its share idle for that long (bench/engine.py, four workers: one sent 4,850
    emails of 5,000 while three spun).

    Rows another transaction has locked (a claim, a hand-over) are skipped rather than
    waited for, so this never waits in a cycle with a hand-over; they are let go at the
    next round. Returns the mailboxes let go."""
    if not mailbox_ids:
        return []
    with ctx.db.transaction() as session:
        free = session.scalars(
            select(Mailbox.id)
            .where(Mailbox.id.in_(mailbox_ids), Mailbox.claimed_by == worker_id)
            .order_by(Mailbox.id)
            .with_for_update(skip_locked=True)
        ).all()
        if free:
            session.execute(
                update(Mailbox)
                .where(Mailbox.id.in_(free))
                .values(claimed_by=None, claimed_at=None)
                .execution_options(synchronize_session=False)
            )
        return list(free)
