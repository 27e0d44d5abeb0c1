"""The emails a worker has claimed and not yet recorded: waiting per mailbox, in flight,
finished.

Each mailbox's emails leave in slot order, one at a time, over the mailbox's own
connection; mailboxes send side by side, up to a bound in the thousands (a thread per
email in flight: the SMTP transport blocks, and a thread waiting on a socket costs no
CPU and releases the interpreter lock). The loop that hands emails over stays on the
worker's thread, with every hand-over and record commit: a send's outcome comes back
through a queue and is recorded with the next hand-over's commit, or on its own when
no hand-over follows soon. Claims made on another thread (engine/worker.py, on
PostgreSQL) come through the same queue, as work the loop runs (`offer`). One
hand-over commit marks the next email of every mailbox that is due and free at that
moment (services/delivery/handover.py, hand_over_many).

Only emails actually being transmitted are in the "handing" state — one per mailbox,
however many mailboxes share a commit — so a crash leaves at most one `unknown` per
mailbox. The waiting mailboxes are kept in a heap by the
slot of their next email, so the next hand-over is found in O(log n) among thousands.
"""

from __future__ import annotations

import contextvars
import functools
import heapq
import logging
import queue
import time
from collections import deque
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from threading import Event
from typing import Any

from cadenza import logs
from cadenza.domain.delivery_outcome import DeliveryResult
from cadenza.engine.metrics import EngineMetrics
from cadenza.engine.transports.base import Transport
from cadenza.services import worker_jobs as jobs
from cadenza.services.context import Context
from cadenza.services.worker_jobs import ClaimedEmail, HandOver

log = logging.getLogger("cadenza.worker")

# The longest a wait for a send lasts before the loop looks at its stop flag again.
_STOP_CHECK_SECONDS = 0.25
# The most mailboxes one hand-over commit carries: enough to pay a commit (PostgreSQL's
# WAL flush) for many emails, few enough that the first of them is not held up long.
HAND_OVERS_PER_COMMIT = 100
# How long a hand-over waits for more of the sends in flight to end, while any are
# sending: emails handed over together share one commit. The wait is as long as recent
# hand-over commits took, within these bounds (`Sends._gathered`).
GATHER_SECONDS = 0.002
GATHER_MOST_SECONDS = 0.025


class Sends:
    def __init__(
        self,
        ctx: Context,
        worker_id: str,
        stop: Event,
        metrics: EngineMetrics,
        transport_of: Callable[[int], Transport],
        bound: int,
    ) -> None:
        self.ctx, self.worker_id, self.stop, self.metrics = ctx, worker_id, stop, metrics
        self._transport_of = transport_of
        self.bound = bound
        self.queues: dict[int, deque[ClaimedEmail]] = {}
        # in flight per mailbox: its email, or None while its session is being opened
        # ahead of its first slot (`warm`)
        self.sending: dict[int, tuple[ClaimedEmail | None, Future[Any]]] = {}
        self.finished: list[tuple[ClaimedEmail, DeliveryResult]] = []
        self.handed = 0  # handed over since the worker started
        # (slot, mailbox) of each mailbox with a queued email and nothing in flight
        self._ready: list[tuple[datetime, int]] = []
        # mailboxes whose send ended, and work offered from another thread (`offer`)
        self._ended: queue.SimpleQueue[int | Callable[[], None]] = queue.SimpleQueue()
        # another thread offers work (engine/worker.py's claimer): waits wake for it
        self.offered = False
        # when this worker last handed each mailbox's email over (its spacing counts from it)
        self._last_start: dict[int, datetime] = {}
        self._executor: ThreadPoolExecutor | None = None
        # each mailbox's metric children, looked up once (labels() validates and locks)
        self._handed_counters: dict[int, Any] = {}
        self._result_counters: dict[tuple[int, str], Any] = {}
        # how long recent hand-over commits took (a moving average of the last few, in
        # seconds): the gather's window
        self._commit_seconds = 0.0

    # -- what is held -------------------------------------------------------------------

    def add(self, claims: list[ClaimedEmail]) -> None:
        """Queues newly claimed emails; a mailbox's claims come in slot order. A mailbox
        whose last email left late is ready a spacing after it, not at the new claim's
        slot: asking the database sooner would only be told to wait, at the price of a
        hand-over's statements (a third of them at 250 ms servers, bench/latency.py)."""
        for claim in sorted(claims, key=lambda c: c.slot):
            waiting = self.queues.setdefault(claim.mailbox_id, deque())
            waiting.append(claim)
            if len(waiting) == 1 and claim.mailbox_id not in self.sending:
                heapq.heappush(self._ready, (self._ready_at(claim), claim.mailbox_id))

    def warm(self, mailbox_ids: list[int]) -> None:
        """Opens these mailboxes' sessions on sender threads, before their first claims
        are queued (`add`): each counts as in flight until its session is open, so its
        first email waits for it rather than running beside it on the same connection,
        then becomes ready at its slot. For mailboxes whose first slot is ahead (the
        worker's choice): the connection, greeting and login happen before it."""
        for mailbox_id in mailbox_ids:
            if mailbox_id in self.sending or mailbox_id in self.queues:
                continue
            future = self._senders().submit(self._transport_of(mailbox_id).prepare)
            self.sending[mailbox_id] = (None, future)
            future.add_done_callback(functools.partial(self._send_ended, mailbox_id))

    def offer(self, work: Callable[[], None]) -> None:
        """From another thread: `work` runs on the loop's thread, the next time it looks
        (it wakes for it). What touches the emails held runs there alone."""
        self._ended.put(work)

    def wait_for_offers(self, seconds: float) -> None:
        """With nothing held: until offered work comes (then runs it), the worker
        stops, or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set() and (left := deadline - time.monotonic()) > 0:
            try:
                work = self._ended.get(timeout=min(left, _STOP_CHECK_SECONDS))
            except queue.Empty:
                continue
            self._collected(work)
            self._collect()
            return

    def take_offers(self) -> None:
        """Runs what was offered and not yet run (before stopping: claims offered last
        are queued, then given back with the rest)."""
        self._collect()

    @property
    def busy(self) -> bool:
        """Emails waiting or in flight."""
        return bool(self.queues or self.sending)

    def holds(self, mailbox_id: int) -> bool:
        return mailbox_id in self.queues or mailbox_id in self.sending

    # -- handing over -------------------------------------------------------------------

    def pump(self, until: datetime | None = None, *, wait: bool = True) -> None:
        """Hands the waiting emails over as their slots come; returns once none is left
        waiting (until None) or at `until`, or when the worker stops. Sends may still
        be in flight: `finish()` waits for them. With `wait=False` it hands over only
        what is due now and the bound lets go, and returns at once.

        Every mailbox whose next email is due when the loop looks is handed over in
        the same commit (`_hand_over`): the more mailboxes fall due while a commit
        runs, the more the next one carries."""
        while self.queues and not self.stop.is_set():
            now = self.ctx.clock.now()
            if wait and until is not None and now >= until:
                return
            self._collect()
            due = self._due(now)
            if due and wait:
                due = self._gathered(due)
                if not due:  # their mailboxes were let go while it waited
                    continue
            if due:
                if not self._hand_over(due):
                    return  # stopping: these are released with the rest
                continue
            if not wait:
                return
            if not self._ready and not self.sending:
                raise AssertionError("emails wait for a mailbox that is neither ready nor sending")
            if not self._ready or len(self.sending) >= self.bound:
                self._wait_for_a_send(until)
                continue
            delay = (self._ready[0][0] - now).total_seconds()
            wait_until = delay if until is None else min(delay, (until - now).total_seconds())
            if self.sending or self.offered:  # a send may end, or claims come, before it
                self._wait_for_a_send(until, wait_until)
            else:
                self.ctx.clock.wait(wait_until, self.stop)

    def _gathered(self, due: list[tuple[datetime, int]]) -> list[tuple[datetime, int]]:
        """`due`, and the mailboxes whose sends end within the gather's window, while
        any are sending and the commit has room: sends handed over together end
        together, and each commit not made is a transaction's statements saved.

        The window is as long as recent hand-over commits took (at least GATHER_SECONDS,
        at most GATHER_MOST_SECONDS): a send that ends just after a commit starts waits
        for that whole commit and then the next one, so waiting up to a commit's length
        for it costs the due emails no more than it saves the gathered ones. Without it
        on PostgreSQL, where a commit of the hand-over's statements takes several times
        a loopback send, a worker's mailboxes split into two halves that took turns,
        each commit carrying half of them (bench/engine.py: 4.2 emails a commit of 8
        mailboxes; 6.7 to 8 with it, and 1.5 times the rate).

        The due mailboxes go back to the heap while it waits, and are taken again after:
        work offered meanwhile runs here (claims, mailboxes let go), and a mailbox let
        go must leave with the rest of what is held (`release`), not be handed over
        from a list the release cannot see (a worker ended on it: KeyError, PostgreSQL
        ×2, bench/engine.py)."""
        room = min(self.bound - len(self.sending), HAND_OVERS_PER_COMMIT)
        if not self.sending or len(due) >= room or GATHER_SECONDS <= 0:
            return due
        for entry in due:
            heapq.heappush(self._ready, entry)
        window = max(GATHER_SECONDS, min(self._commit_seconds, GATHER_MOST_SECONDS))
        deadline = time.monotonic() + window
        while self.sending and (left := deadline - time.monotonic()) > 0:
            self._wait_for_a_send(None, left)
        return self._due(self.ctx.clock.now())

    def _due(self, now: datetime) -> list[tuple[datetime, int]]:
        """(slot, mailbox) of the mailboxes whose next email may be handed over now, taken
        from the heap: as many as the bound lets go, HAND_OVERS_PER_COMMIT at most."""
        room = min(self.bound - len(self.sending), HAND_OVERS_PER_COMMIT)
        due: list[tuple[datetime, int]] = []
        while self._ready and self._ready[0][0] <= now and len(due) < room:
            due.append(heapq.heappop(self._ready))
        return due

    def settle(self, until: datetime) -> None:
        """Once nothing waits for its slot before `until`: takes in the sends that end
        before then, and records every outcome so far in one commit."""
        while self.sending and not self.stop.is_set() and self.ctx.clock.now() < until:
            if self._ready and self._ready[0][0] <= self.ctx.clock.now():
                break  # an email is due: the caller hands it over first
            self._wait_for_a_send(until)
        if self.finished or not self._ended.empty():
            self.record()

    def finish(self) -> None:
        """Waits for the sends in flight and records every outcome not yet recorded."""
        while self.sending:
            self._wait_for_a_send(None)
        self.record()

    def record(self) -> None:
        """Records the finished sends' outcomes now, in one commit."""
        self._collect()
        finished, self.finished = self.finished, []
        jobs.record_outcomes(self.ctx, finished, self.worker_id)

    def release(self, mailbox_ids: Collection[int] | None = None) -> None:
        """Gives back what was claimed and not handed over, for any worker to send: of
        these mailboxes (ones this worker let go: delivery/affinity.py), or of all when
        stopping. An email in flight is not touched: it ends and is recorded here.

        The slots their claims were granted are not given back: a claim grants none
        beyond its horizon, so the worker that takes a mailbox over sends its emails at
        most a horizon and a spacing later than planned."""
        gone = set(self.queues) if mailbox_ids is None else set(mailbox_ids) & set(self.queues)
        unsent = [claim for mailbox_id in sorted(gone) for claim in self.queues.pop(mailbox_id)]
        self._ready = [entry for entry in self._ready if entry[1] not in gone]
        heapq.heapify(self._ready)
        if unsent:
            jobs.release_unsent(self.ctx, unsent, self.worker_id)
            if mailbox_ids is not None:
                log.info(
                    "gave back %d claimed emails of mailboxes let go: %s",
                    len(unsent),
                    ", ".join(map(str, sorted(gone))),
                )

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # -- one email ----------------------------------------------------------------------

    def _hand_over(self, due: list[tuple[datetime, int]]) -> bool:
        """Marks the next email of each of these mailboxes handing, recording what
        finished meanwhile, in one commit, and starts their sends; False when the worker
        is stopping and a mailbox's previous email left too recently (WAIT): it is
        released with the rest.

        Each of these mailboxes has nothing in flight, and only its next email is
        marked: however many mailboxes share the commit, a crash after it leaves at
        most one `unknown` per mailbox. On WAIT the mailbox goes back to the heap for
        when its spacing allows (`_next_free`), and the others go on meanwhile: one
        late mailbox must not stall a thousand."""
        claims = [self.queues[mailbox_id][0] for _, mailbox_id in due]
        finished, self.finished = self.finished, []
        started = time.monotonic()
        with logs.bound(**(ids_of(claims[0]) if len(claims) == 1 else {})):
            steps = jobs.hand_over_many(self.ctx, claims, self.worker_id, finished)
        took = time.monotonic() - started
        self._commit_seconds += (took - self._commit_seconds) / 8
        going = True
        for (slot, mailbox_id), claim, step in zip(due, claims, steps, strict=True):
            if step is HandOver.WAIT:
                if self.stop.is_set():
                    heapq.heappush(self._ready, (slot, mailbox_id))
                    going = False
                else:
                    heapq.heappush(self._ready, (self._next_free(claim), mailbox_id))
                continue
            waiting = self.queues[mailbox_id]
            waiting.popleft()
            if not waiting:
                del self.queues[mailbox_id]
            if step is HandOver.GO:
                self._start(claim)
            elif waiting:  # skipped: the mailbox's next email may go
                heapq.heappush(self._ready, (waiting[0].slot, mailbox_id))
        return going

    def _ready_at(self, claim: ClaimedEmail) -> datetime:
        """When the mailbox may hand `claim` over: its slot, and no sooner than a spacing
        after this worker's last hand-over for it (the database's rule at hand-over:
        asking before would only be told to wait). The database's mark is the hand-over
        commit's instant, read before this worker noted the start: never later."""
        last = self._last_start.get(claim.mailbox_id)
        if last is None:
            return claim.slot
        return max(claim.slot, last + claim.spacing)

    def _next_free(self, claim: ClaimedEmail) -> datetime:
        """After a WAIT: when this worker's own last hand-over allows, or (another
        worker's hand-over, not known here) a tenth of the spacing later."""
        now = self.ctx.clock.now()
        ready = self._ready_at(claim)
        return ready if ready > now else now + claim.spacing / 10

    def _start(self, claim: ClaimedEmail) -> None:
        transport = self._transport_of(claim.mailbox_id)
        with logs.bound(**ids_of(claim)):  # the sender thread logs with the ids too
            send = contextvars.copy_context().run
        future = self._senders().submit(
            send, transport.send, claim.sender, [claim.recipient], claim.raw
        )
        started = self.ctx.clock.now()
        self.sending[claim.mailbox_id] = (claim, future)
        self._last_start[claim.mailbox_id] = started
        future.add_done_callback(functools.partial(self._send_ended, claim.mailbox_id))
        self.handed += 1
        lateness = (started - claim.slot).total_seconds()
        self.metrics.lateness.observe(max(lateness, 0.0))
        counter = self._handed_counters.get(claim.mailbox_id)
        if counter is None:
            counter = self.metrics.handed_over.labels(str(claim.mailbox_id))
            self._handed_counters[claim.mailbox_id] = counter
        counter.inc()

    def _send_ended(self, mailbox_id: int, _: Future[DeliveryResult]) -> None:
        """On the sender thread: tells the worker's loop (which alone touches the rest)."""
        self._ended.put(mailbox_id)

    def _wait_for_a_send(self, until: datetime | None, most: float | None = None) -> None:
        """Until a send ends (then collects it) or offered work comes (then runs it),
        `most` seconds pass, or `until` comes."""
        if not self.sending and not self.offered:
            return
        timeout = _STOP_CHECK_SECONDS
        if most is not None:
            timeout = min(timeout, max(most, 0.0))
        if until is not None:
            timeout = min(timeout, max((until - self.ctx.clock.now()).total_seconds(), 0.0))
        try:
            ended = self._ended.get(timeout=timeout) if timeout > 0 else self._ended.get_nowait()
        except queue.Empty:
            return
        self._collected(ended)
        self._collect()

    def _collect(self) -> None:
        """Takes in every send that has ended, without waiting."""
        while True:
            try:
                ended = self._ended.get_nowait()
            except queue.Empty:
                return
            self._collected(ended)

    def _collected(self, ended: int | Callable[[], None]) -> None:
        if callable(ended):
            ended()
            return
        mailbox_id = ended
        claim, future = self.sending.pop(mailbox_id)
        if claim is None:  # its session opened (or not: the send will say): now ready
            waiting = self.queues.get(mailbox_id)
            if waiting:
                heapq.heappush(self._ready, (self._ready_at(waiting[0]), mailbox_id))
            return
        result = future.result()
        self.finished.append((claim, result))
        key = (claim.mailbox_id, str(result.outcome))
        counter = self._result_counters.get(key)
        if counter is None:
            counter = self._result_counters[key] = self.metrics.results.labels(str(key[0]), key[1])
        counter.inc()
        code = f" ({result.code})" if result.code else ""
        extra = {**ids_of(claim), "outcome": str(result.outcome)}
        log.info("email handed over: %s%s", result.outcome, code, extra=extra)
        waiting = self.queues.get(mailbox_id)
        if waiting:
            heapq.heappush(self._ready, (self._ready_at(waiting[0]), mailbox_id))

    def _senders(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.bound, thread_name_prefix="cadenza-send")
        return self._executor


def ids_of(claim: ClaimedEmail) -> dict[str, int | None]:
    """What a log record about this email names (cadenza/logs.py)."""
    return {
        "mailbox_id": claim.mailbox_id,
        "enrollment_id": claim.enrollment_id,
        "step_run_id": claim.run_id,
        "message_id": claim.message_pk,
    }
