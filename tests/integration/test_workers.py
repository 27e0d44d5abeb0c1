"""Worker processes: many at once on PostgreSQL, one on SQLite, SIGKILL and SIGTERM."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from cadenza.domain.clock import FrozenClock, SystemClock
from cadenza.engine.worker import Worker
from cadenza.engine.worker_lock import WorkerLock
from cadenza.services.accounts.mailboxes import update_mailbox
from cadenza.services.context import Context
from cadenza.store.db import Database
from cadenza.store.models import Message, StepRun
from tests.conftest import _empty_postgres
from tests.support.seed import seed_due_emails
from tests.support.smtp_sink import SmtpSink

CADENZA = [sys.executable, "-m", "cadenza"]

# Real-clock worker processes: under `-n`, one xdist worker runs them one after another.
pytestmark = pytest.mark.xdist_group("realclock")


@pytest.fixture(autouse=True)
def shared_key_file(monkeypatch, settings):
    """The worker processes open the stored secrets with this test's key, as it does."""
    monkeypatch.setenv("CADENZA_KEY_FILE", settings.key_file)


def spawn_worker(url: str, name: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "CADENZA_DATABASE_URL": url}
    return subprocess.Popen(
        [*CADENZA, "worker", "--exit-when-idle", "--poll", "0.1", "--id", name, *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def statuses(ctx) -> Counter:
    with ctx.db.transaction() as session:
        return Counter(
            dict(
                session.execute(select(Message.status, func.count()).group_by(Message.status)).all()
            )
        )


@pytest.fixture
def live_ctx(database, settings) -> Context:
    return Context(db=database, clock=SystemClock(), settings=settings)


@pytest.fixture
def pg_ctx(pg_database_url, settings):
    db = Database(pg_database_url)
    # Keeps the built-in object types the migration seeded: later tests on the shared
    # database enroll from companies.
    _empty_postgres(db)
    yield Context(db=db, clock=SystemClock(), settings=settings)
    db.dispose()


# 200 due emails on each of 10 mailboxes, claimed 50 at a time: 40 claims the workers race
# for (5,000 emails claimed 200 at a time made 30, and sending them cost most of the run).
MANY_EMAILS, MANY_BATCH = 2000, 50


@pytest.mark.parametrize("workers", [2, 4])
def test_many_workers_on_postgresql_send_every_step_exactly_once(pg_ctx, workers):
    with SmtpSink() as sink:
        seed_due_emails(pg_ctx, MANY_EMAILS, mailboxes=10, smtp_port=sink.port)
        processes = [
            spawn_worker(pg_ctx.db.url, f"w{i}", "--batch-size", str(MANY_BATCH))
            for i in range(workers)
        ]
        outputs = [p.communicate(timeout=600)[0] for p in processes]
        assert [p.returncode for p in processes] == [0] * workers, outputs
        received = sink.message_ids()
    # checked on the SMTP side: every one arrived, none twice
    assert len(received) == MANY_EMAILS and len(set(received)) == MANY_EMAILS
    with pg_ctx.db.transaction() as session:
        stored = set(session.scalars(select(Message.message_id)))
        runs = Counter(session.scalars(select(StepRun.status)))
    assert stored == set(received) and runs == Counter({"sent": MANY_EMAILS})
    handed = [int(re.search(r"handing over (\d+) emails", out).group(1)) for out in outputs]
    assert sum(handed) == MANY_EMAILS and all(n > 0 for n in handed), handed


def test_worker_killed_mid_batch_leaves_only_the_in_flight_step_unknown(live_ctx):
    with SmtpSink() as sink:
        seed_due_emails(live_ctx, 120, smtp_port=sink.port)
        reached, release = sink.hang_data_after(40)
        process = spawn_worker(live_ctx.db.url, "doomed")
        assert reached.wait(120), "the worker never reached the 41st message"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        release.set()
        # A new worker whose clock is past every lease the dead one held.
        later = FrozenClock(datetime.now(UTC) + timedelta(minutes=10))
        restarted = Worker(Context(db=live_ctx.db, clock=later, settings=live_ctx.settings))
        restarted.run_until(later.now() + timedelta(minutes=5))
        restarted.close()
        received = sink.message_ids()
    assert len(received) == len(set(received)) == 120  # nothing lost, nothing twice
    assert statuses(live_ctx) == Counter({"sent": 119, "unknown": 1})
    with live_ctx.db.transaction() as session:
        unknown = session.scalar(select(Message.message_id).where(Message.status == "unknown"))
    assert unknown == received[40]  # exactly the one the server held when the worker died


def two_mailboxes_on_two_sinks(ctx, count: int, first: SmtpSink, second: SmtpSink) -> list[int]:
    boxes = seed_due_emails(ctx, count, mailboxes=2, smtp_port=first.port)
    update_mailbox(ctx, boxes[1], {"smtp_port": second.port})
    return boxes


def test_a_hanging_server_does_not_hold_up_another_mailbox(live_ctx):
    """Each mailbox sends over its own connection: one stuck server delays only its own."""
    with SmtpSink() as stuck, SmtpSink() as healthy:
        two_mailboxes_on_two_sinks(live_ctx, 20, stuck, healthy)
        reached, release = stuck.hang_data_after(0)
        worker = Worker(live_ctx)
        runner = threading.Thread(target=worker.run, kwargs={"exit_when_idle": True})
        runner.start()
        try:
            healthy.wait_for_messages(10, timeout=60)
            assert reached.is_set() and stuck.message_count == 1  # the first, still unanswered
        finally:
            release.set()
            runner.join(timeout=120)
        assert len(set(stuck.message_ids())) == len(set(healthy.message_ids())) == 10
    assert statuses(live_ctx) == Counter({"sent": 20})


def test_a_crash_leaves_at_most_the_one_email_in_flight_per_mailbox_unknown(live_ctx):
    with SmtpSink() as first, SmtpSink() as second:
        two_mailboxes_on_two_sinks(live_ctx, 40, first, second)
        held = [sink.hang_data_after(5) for sink in (first, second)]
        process = spawn_worker(live_ctx.db.url, "doomed")
        for reached, _ in held:
            assert reached.wait(120), "the worker never reached the 6th message of a mailbox"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        for _, release in held:
            release.set()
        later = FrozenClock(datetime.now(UTC) + timedelta(minutes=10))
        restarted = Worker(Context(db=live_ctx.db, clock=later, settings=live_ctx.settings))
        restarted.run_until(later.now() + timedelta(minutes=5))
        restarted.close()
        received = first.message_ids() + second.message_ids()
        in_flight = {first.message_ids()[5], second.message_ids()[5]}
    assert len(received) == len(set(received)) == 40  # nothing lost, nothing twice
    assert statuses(live_ctx) == Counter({"sent": 38, "unknown": 2})
    with live_ctx.db.transaction() as session:
        unknown = set(
            session.scalars(select(Message.message_id).where(Message.status == "unknown"))
        )
    assert unknown == in_flight  # exactly the ones each server held when the worker died


def test_sigterm_finishes_the_email_in_flight_and_releases_the_rest(live_ctx):
    with SmtpSink() as sink:
        seed_due_emails(live_ctx, 60, smtp_port=sink.port)
        reached, release = sink.hang_data_after(10)
        process = spawn_worker(live_ctx.db.url, "polite")
        assert reached.wait(120)
        process.send_signal(signal.SIGTERM)
        release.set()
        output = process.communicate(timeout=60)[0]
        assert process.returncode == 0, output
        assert len(sink.message_ids()) == 11
    assert statuses(live_ctx) == Counter({"sent": 11, "prepared": 49})
    with live_ctx.db.transaction() as session:
        runs = Counter(session.scalars(select(StepRun.status)))
    assert runs == Counter({"sent": 11, "pending": 49})  # released at once, not left leased


def test_a_second_worker_on_sqlite_refuses_to_start(sqlite_template, tmp_path):
    url = f"sqlite:///{tmp_path / 'one.db'}"
    shutil.copy(sqlite_template, tmp_path / "one.db")
    with WorkerLock(url):
        process = spawn_worker(url, "second")
        output = process.communicate(timeout=60)[0]
    assert process.returncode == 1
    assert "another worker is already running on this SQLite database" in output


def test_throttle_holds_across_worker_processes(pg_ctx):
    """Two workers share one mailbox's slots through its row: sends stay spaced."""
    with SmtpSink() as sink:
        seed_due_emails(pg_ctx, 8, smtp_port=sink.port, per_minute_limit=60)
        processes = [spawn_worker(pg_ctx.db.url, f"t{i}") for i in range(2)]
        outputs = [p.communicate(timeout=120)[0] for p in processes]
        assert [p.returncode for p in processes] == [0, 0], outputs
        received = sink.message_ids()
    assert len(received) == len(set(received)) == 8
    # The guarantee is taken at hand-over, in the database, whichever worker sends. (The
    # gaps between arrivals at the sink are not asserted: on a loaded machine one slow
    # transmission followed by a prompt one brings two arrivals closer than the limit
    # although the workers kept it.)
    with pg_ctx.db.transaction() as session:
        handed = sorted(session.scalars(select(Message.handed_at)))
    assert all(b - a >= timedelta(seconds=1) for a, b in itertools.pairwise(handed)), handed
    assert statuses(pg_ctx) == Counter({"sent": 8})
