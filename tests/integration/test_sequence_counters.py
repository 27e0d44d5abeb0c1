"""A sequence's counters (services/counters) always equal a count of its rows.

The services write a delta with every change of a counted fact; the pages sum them. A
figure that drifted from the rows would be wrong on every page from then on, so this
drives sequences through many operations, in a random order from a fixed seed, through
the services only — enroll, send, refuse, retry, lose a send and review it, pause,
resume, unenroll with reasons, finish, open and click (by people, scanners, again),
reply, book meetings, bounce and undo it, tasks opened, completed and skipped, old
events deleted by the retention policy, contacts erased — and after each one compares
every counter with the one recount of the rows (counters/tally.py, which is also what
`cadenza db rebuild-counters` and migration 0025 write). Then the pages' figures, read
from the counters, must not move when the counters are rebuilt from the rows.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections import Counter
from dataclasses import asdict
from datetime import date, timedelta
from uuid import uuid4

import pytest
import sqlalchemy as sa
from sqlalchemy import select, true
from sqlalchemy import text as sa_text

from cadenza.domain.counters import EMAILED
from cadenza.domain.delivery_outcome import DeliveryOutcome, DeliveryResult
from cadenza.domain.enums import EventKind, TaskStatus
from cadenza.domain.errors import CadenzaError
from cadenza.domain.link_tokens import Purpose, sign
from cadenza.engine.worker import Worker, WorkerOptions
from cadenza.services import retention
from cadenza.services.accounts.link_secret import link_secret
from cadenza.services.analytics import results
from cadenza.services.analytics.stats import sequence_stats
from cadenza.services.context import Context
from cadenza.services.counters import deltas, upkeep
from cadenza.services.counters.deltas import Delta, add
from cadenza.services.counters.figures import sequence_figures
from cadenza.services.counters.tally import tally
from cadenza.services.crm.contacts import delete_contact
from cadenza.services.delivery import handover as delivery
from cadenza.services.delivery import outbox, recovery
from cadenza.services.enrollment import control, tasks
from cadenza.services.signals import tracking
from cadenza.services.signals.effects import Signal, record_signal
from cadenza.services.signals.events import revoke
from cadenza.store import migrate
from cadenza.store.models import EmailEvent, Enrollment, Message, SequenceCount, Task
from tests.conftest import BACKENDS, enroll_ids
from tests.integration import test_upgrade_with_data as upgrade_data
from tests.support.rows import claim

STEPS = [
    {"type": "email", "subject": "Hi {{ contact.firstname }}",
     "body": '<p>Hello, see <a href="https://example.test/plan">our plan</a></p>',
     "variants": [{}, {"subject": "Quick question, {{ contact.firstname }}"}]},
    {"type": "task", "delay_days": 1, "task_type": "call", "task_title": "Call"},
    {"type": "email", "delay_days": 1, "thread_with_step": 1, "body": "<p>Bump</p>"},
]  # fmt: skip
TRACKED = {"track_opens": True, "track_clicks": True}
HUMAN = "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Mail"
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel)"
OUTCOMES = [
    DeliveryResult(DeliveryOutcome.SENT, 250, "2.0.0 OK"),
    DeliveryResult(DeliveryOutcome.SENT, 250, "2.0.0 OK"),
    DeliveryResult(DeliveryOutcome.SENT, 250, "2.0.0 OK"),
    DeliveryResult(DeliveryOutcome.PERMANENT, 550, "5.1.1 no such user"),
    DeliveryResult(DeliveryOutcome.TRANSIENT, 451, "4.3.0 try later"),
    DeliveryResult(DeliveryOutcome.UNKNOWN, None, "no answer after DATA"),
]
REASONS = ["manual", "replied", "meeting_booked", "bounced", "unsubscribed"]


def stored(ctx: Context) -> dict:
    """Every sequence's counters, summed per key (zeros left out)."""
    sums: Counter = Counter()
    with ctx.db.read() as session:
        for row in session.execute(
            select(
                SequenceCount.sequence_id, SequenceCount.step_position, SequenceCount.variant,
                SequenceCount.key, SequenceCount.day, SequenceCount.n,
            )
        ):  # fmt: skip
            *key, n = row
            sums[tuple(key)] += n
    return {key: n for key, n in sums.items() if n}


def recounted(ctx: Context) -> dict:
    with ctx.db.read() as session:
        return {key: n for key, n in tally(session, true()).items() if n}


def assert_counted(ctx: Context, step: str) -> None:
    have, want = stored(ctx), recounted(ctx)
    keys = set(have) | set(want)
    wrong = {k: (have.get(k), want.get(k)) for k in keys if have.get(k) != want.get(k)}
    assert not wrong, f"after {step}: (counters, rows) {wrong}"


def pages(ctx: Context, sequence_id: int) -> dict:
    today = ctx.clock.now().date()
    report = results.sequence_report(ctx, sequence_id)
    return {
        "stats": asdict(sequence_stats(ctx, sequence_id)),
        "report": asdict(report),
        "rates": report.rates,
        "daily": results.daily_activity(ctx, sequence_id, days=30, today=today),
    }


class Driver:
    """One random operation at a time, through the services; an operation the rows'
    state refuses (a CadenzaError) is a no-op, as it is for a person."""

    def __init__(self, ctx, world, seed: int) -> None:
        self.ctx, self.world, self.random = ctx, world, random.Random(seed)
        self.sequences = [
            world.make_sequence(steps=STEPS, settings=TRACKED, name=f"Counted {i}")
            for i in range(2)
        ]
        self.contacts = 0
        self.signals = 0

    def rows(self, model, *where):
        with self.ctx.db.read() as session:
            return list(session.scalars(select(model).where(*where)))

    def pick(self, items):
        return self.random.choice(items) if items else None

    def enroll(self) -> None:
        self.contacts += 1
        contact = self.world.contact(f"p{self.contacts}@corp.example", firstname="Pat")
        enroll_ids(self.world, [contact], self.pick(self.sequences))

    def send(self) -> None:
        ctx = self.ctx
        ctx.clock.advance(timedelta(hours=self.random.choice([1, 13, 30])))
        tasks.create_due_tasks(ctx)
        held = claim(ctx, "w1", self.world.mailbox.id, horizon=timedelta(0))
        for one in held[:1]:  # one mailbox: one email in flight
            if delivery.hand_over(ctx, one, "w1") is not delivery.HandOver.GO:
                continue
            if self.random.random() < 0.15:  # the worker dies: its lease runs out
                ctx.clock.advance(timedelta(hours=1))
                recovery.recover_expired(ctx)
            else:
                delivery.record_outcomes(ctx, [(one, self.pick(OUTCOMES))], "w1")
        recovery.release_unsent(ctx, held[1:], "w1")

    def review(self) -> None:
        message = self.pick(self.rows(Message, Message.status.in_(("unknown", "failed"))))
        if message is None:
            return
        if message.status == "unknown" and self.random.random() < 0.5:
            outbox.resolve_unknown(self.ctx, message.id, delivered=self.random.random() < 0.5)
        else:
            outbox.retry_messages(
                self.ctx, [message.id], reason="fixed", confirm_not_delivered=True
            )

    def pause_or_resume(self) -> None:
        live = self.rows(Enrollment, Enrollment.state.in_(("active", "paused")))
        enrollment = self.pick(live)
        if enrollment is None:
            return
        if enrollment.state == "active":
            control.pause(self.ctx, enrollment.id)
        else:
            control.resume(self.ctx, enrollment.id)

    def unenroll(self) -> None:
        enrollment = self.pick(self.rows(Enrollment, Enrollment.state.in_(("active", "paused"))))
        if enrollment is not None:
            control.unenroll(self.ctx, enrollment.id, self.pick(REASONS))

    def task(self) -> None:
        task = self.pick(self.rows(Task, Task.status == TaskStatus.OPEN))
        if task is None:
            return
        if self.random.random() < 0.6:
            tasks.complete_task(self.ctx, task.id)
        else:
            tasks.skip_task(self.ctx, task.id)

    def engage(self) -> None:
        message = self.pick(self.rows(Message, Message.sent_at.is_not(None)))
        if message is None:
            return
        self.ctx.clock.advance(timedelta(minutes=self.random.choice([0, 10])))  # grace
        secret = link_secret(self.ctx)
        agent = HUMAN if self.random.random() < 0.7 else SCANNER
        if self.random.random() < 0.6:
            token = sign(secret, Purpose.OPEN, message.tracking_id)
            tracking.record_open(self.ctx, token, agent)
        else:
            token = sign(secret, Purpose.CLICK, message.tracking_id, 0)
            tracking.record_click(self.ctx, token, agent)

    def signal(self) -> None:
        message = self.pick(self.rows(Message, Message.sent_at.is_not(None)))
        if message is None:
            return
        self.signals += 1
        kind = self.pick([EventKind.REPLY, EventKind.REPLY, EventKind.MEETING_BOOKED,
                          EventKind.BOUNCE])  # fmt: skip
        record_signal(
            self.ctx,
            Signal(kind, f"signal-{self.signals}", message_pk=message.id, hard=True),
        )

    def undo_bounce(self) -> None:
        standing = self.rows(
            EmailEvent, EmailEvent.kind == EventKind.BOUNCE, EmailEvent.revoked_at.is_(None)
        )
        bounce = self.pick(standing)
        if bounce is not None:
            revoke(self.ctx, self.world.admin, bounce.id, "posted by mistake")

    def forget_old_events(self) -> None:
        self.ctx.clock.advance(timedelta(days=2))
        settings = self.ctx.settings.model_copy(update={"retention_event_days": 1})
        retention.run(Context(db=self.ctx.db, clock=self.ctx.clock, settings=settings))

    def erase(self) -> None:
        ended = self.rows(Enrollment, Enrollment.state.in_(("finished", "unenrolled")))
        enrollment = self.pick(ended)
        if enrollment is not None:
            delete_contact(self.ctx, enrollment.contact_id)

    def fold(self) -> None:
        with self.ctx.db.transaction() as session:
            upkeep.fold(session, self.pick(self.sequences).id)

    def step(self) -> str:
        name = self.random.choices(
            ["enroll", "send", "review", "pause_or_resume", "unenroll", "task", "engage",
             "signal", "undo_bounce", "forget_old_events", "erase", "fold"],
            weights=[8, 14, 2, 3, 2, 3, 8, 4, 1, 1, 1, 1],
        )[0]  # fmt: skip
        with contextlib.suppress(CadenzaError):
            getattr(self, name)()
        return name


@pytest.fixture
def admin(world):
    from cadenza.services.accounts.users import create_user

    world.admin = create_user(world.ctx, "boss@example.com", role="admin")
    return world.admin


@pytest.mark.parametrize("seed", [1, 2])
def test_counters_equal_a_recount_of_the_rows_after_every_operation(ctx, world, admin, seed):
    driver = Driver(ctx, world, seed)
    done = Counter()
    for number in range(120):
        name = driver.step()
        done[name] += 1
        assert_counted(ctx, f"operation {number} ({name})")
    assert done["send"] > 10 and done["engage"] > 5, done  # the walk did reach the figures
    before = {s.id: pages(ctx, s.id) for s in driver.sequences}
    assert any(p["report"]["outcomes"]["sent"] for p in before.values())
    upkeep.rebuild(ctx)  # the counters replaced by a recount of the rows
    assert {s.id: pages(ctx, s.id) for s in driver.sequences} == before


def test_a_contact_is_counted_emailed_once_whatever_its_emails(ctx, world):
    """Each enrollment's first email sent counts its contact as emailed, its later ones
    do not: the statement that records a run sent says whether it was the first."""
    steps = [
        {"type": "email", "subject": "One", "body": "<p>One</p>"},
        {"type": "email", "delay_days": 1, "thread_with_step": 1, "body": "<p>Two</p>"},
    ]
    two = world.make_sequence(steps=steps, name="Two emails")
    enroll_ids(world, world.contacts(3, prefix="twice"), two)
    Worker(ctx, WorkerOptions(webhooks=False)).run_until(ctx.clock.now() + timedelta(days=6))
    with ctx.db.read() as session:
        sent = session.scalars(select(Message.enrollment_id).where(Message.status == "sent")).all()
    assert sorted(Counter(sent).values()) == [2, 2, 2]  # every contact got both emails
    emailed = [n for (seq, *_, key, _), n in stored(ctx).items() if (seq, key) == (two.id, EMAILED)]
    assert emailed == [3]
    assert_counted(ctx, "both steps sent")


def test_a_fold_keeps_the_sums_and_loses_no_concurrent_delta(ctx, world):
    sequence_id = world.sequence.id
    with ctx.db.transaction() as session:
        add(session, [Delta(sequence_id, 1, "", "runs:sent", 1) for _ in range(300)])
    errors: list[BaseException] = []

    def more(count: int) -> None:
        try:
            for _ in range(count):
                with ctx.db.transaction() as session:
                    add(session, [Delta(sequence_id, 1, "", "runs:sent", 1)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    writer = threading.Thread(target=more, args=(50,))
    writer.start()
    for _ in range(5):
        with ctx.db.transaction() as session:
            upkeep.fold(session, sequence_id)
    writer.join()
    assert errors == []
    assert sequence_figures(ctx, sequence_id).step(1, "runs:sent") == 350
    with ctx.db.transaction() as session:
        upkeep.fold(session, sequence_id)
    with ctx.db.read() as session:
        left = session.execute(
            select(SequenceCount.key, SequenceCount.n).where(
                SequenceCount.sequence_id == sequence_id
            )
        ).all()
    assert left == [("runs:sent", 350)]


def test_a_read_folds_a_long_run_of_deltas(ctx, world):
    sequence_id = world.sequence.id
    with ctx.db.transaction() as session:
        add(session, [Delta(sequence_id, 0, "", "enrollments:active", 1) for _ in range(250)])
    assert sequence_stats(ctx, sequence_id).active == 250
    with ctx.db.read() as session:
        rows = session.scalars(
            select(SequenceCount.n).where(SequenceCount.sequence_id == sequence_id)
        ).all()
    assert rows == [250]


DAY = date(2026, 12, 4)


def test_a_batch_writes_one_row_per_figure_it_moves(ctx, world):
    """The worker records many sends in one commit (counters.batched): each figure's
    deltas are summed into one row, and a figure whose deltas cancel gets none."""
    sequence_id = world.sequence.id
    with ctx.db.engine.begin() as connection, deltas.batched(connection):
        for _ in range(4):  # four sends of step 1 recorded in one commit
            add(connection, [Delta(sequence_id, 1, "", "runs:sending", -1)])
            add(connection, [Delta(sequence_id, 1, "", "runs:sent", 1)])
        add(connection, [Delta(sequence_id, 2, "", "runs:pending", 1)])
        add(connection, [Delta(sequence_id, 2, "", "runs:pending", -1)])
        add(connection, [Delta(sequence_id, 0, "", "day:sent", 2, DAY)])
        add(connection, [Delta(sequence_id, 0, "", "day:sent", 1, DAY)])
    with ctx.db.read() as session:
        rows = session.execute(
            select(SequenceCount.step_position, SequenceCount.key, SequenceCount.day,
                   SequenceCount.n)
            .where(SequenceCount.sequence_id == sequence_id)
            .order_by(SequenceCount.step_position, SequenceCount.key)
        ).all()  # fmt: skip
    assert [tuple(row) for row in rows] == [
        (0, "day:sent", DAY, 3),
        (1, "runs:sending", None, -4),
        (1, "runs:sent", None, 4),
    ]


@pytest.fixture(params=BACKENDS)
def first_release(request, tmp_path):
    """The first release's database with its rows (test_upgrade_with_data.py's)."""
    with upgrade_data.empty_database(request.param, tmp_path) as db:
        migrate.upgrade(db, "0001")
        filler = upgrade_data.Filler(db)
        upgrade_data.fill_first_release(filler)
        yield db, filler


def test_migration_0025_counts_the_rows_an_installation_has(first_release):
    """The first release's rows (enrollments in every state, sent and pending steps, a
    reply, a bounce), with opens, clicks and a meeting added before 0025: after it,
    the counters hold what a recount of those rows says, and the pages show it."""
    from cadenza.config import Settings
    from cadenza.domain.clock import FrozenClock
    from cadenza.store.types import UTCDateTime

    db, filler = first_release
    T0 = upgrade_data.T0
    migrate.upgrade(db, "0024")
    with db.engine.connect() as connection:
        messages = connection.execute(
            sa_text("SELECT id, enrollment_id, contact_id FROM messages ORDER BY id")
        ).all()
    for n, (message, enrollment, contact) in enumerate(messages):
        for kind, flagged in (("open", None), ("open", None), ("open", "scanner"),
                              ("click", None), ("meeting_booked", None)):  # fmt: skip
            filler.add(
                "email_events", kind=kind, contact_id=contact, enrollment_id=enrollment,
                message_id=message, dedupe_key=f"{kind}-{message}-{flagged}-{n}-{uuid4()}",
                data={"flagged": flagged} if flagged else {}, occurred_at=T0 - timedelta(hours=n),
            )  # fmt: skip
    table = sa.table("messages", sa.column("id"), sa.column("bounced_at", UTCDateTime()))
    with db.engine.begin() as connection:
        connection.execute(
            sa.update(table).where(table.c.id == messages[-1][0]).values(bounced_at=T0)
        )
    migrate.upgrade(db, "0025")
    ctx = Context(db=db, clock=FrozenClock(T0), settings=Settings(database_url=db.url))
    assert stored(ctx) == recounted(ctx) != {}
    with ctx.db.read() as session:
        [sequence_id] = session.scalars(select(Enrollment.sequence_id).distinct()).all()
    report = results.sequence_report(ctx, sequence_id)
    assert report.counts.enrolled == len(messages) and report.counts.steps[0].sent == len(messages)
    assert report.outcomes.opened == len(messages) and report.outcomes.bounced == 1
    assert report.outcomes.meetings_booked == len(messages) and report.outcomes.replied == 1
    assert report.contacts_emailed == len(messages)
    upkeep.rebuild(ctx)
    assert asdict(results.sequence_report(ctx, sequence_id)) == asdict(report)


def test_rebuild_counters_from_the_cli_recounts_the_rows(ctx, world, cli):
    """Rows written around the services (as bench/large.py does) have no counters until
    `cadenza db rebuild-counters` recounts them; a sequence of its own, or every one."""
    enroll_ids(world, [world.contact()])
    with ctx.db.transaction() as session:
        session.execute(sa.delete(SequenceCount))  # as if written around the services
    assert sequence_stats(ctx, world.sequence.id).enrolled == 0
    assert "counters rebuilt" in cli("db", "rebuild-counters", "--sequence", world.sequence.id)
    assert sequence_stats(ctx, world.sequence.id).active == 1
    assert stored(ctx) == recounted(ctx)
    cli("db", "rebuild-counters")
    assert stored(ctx) == recounted(ctx)
    assert "--sequence" in cli("db", "rebuild-counters", "--sequence", "0", ok=False)
