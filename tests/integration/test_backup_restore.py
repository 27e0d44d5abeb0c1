"""`cadenza backup` / `cadenza restore` (docs/backup.md), on SQLite and PostgreSQL.

A backup taken while the worker sends holds every enrollment, message and event of one
instant; a restore into a fresh location finds them all; and a restored installation
never sends again what the old one sent after the backup: those emails are `unknown`,
for a person to review, as after a crash mid-send.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from email.parser import BytesParser
from email.policy import default
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from cadenza.domain.enums import EventKind
from cadenza.domain.errors import CadenzaError
from cadenza.engine.worker import Worker, WorkerOptions
from cadenza.services.context import Context
from cadenza.services.delivery.outbox import list_messages, resolve_unknown
from cadenza.services.operations.backup import backup_taken_at, restore_backup, take_backup
from cadenza.services.signals import events
from cadenza.store.backup import empty_postgresql
from cadenza.store.db import Database
from cadenza.store.models import (
    AuditEntry,
    Contact,
    EmailEvent,
    Enrollment,
    Mailbox,
    Message,
    StepRun,
)
from tests.conftest import PG_ADMIN_DSN, code_of, enroll_ids
from tests.support.smtp_sink import SmtpSink

TWO_EMAILS = [
    {"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"},
    {"type": "email", "delay_days": 1, "subject": "Again {{ contact.firstname }}",
     "body": "<p>Bump</p>"},
]  # fmt: skip


@pytest.fixture(scope="module")
def spare_pg_url() -> Iterator[str]:
    """A second PostgreSQL database of this module's, for restores to land in: created
    once (CREATE DATABASE costs seconds here) and emptied by each test that uses it."""
    name = f"cadenza_restore_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_DSN.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_location(request, ctx: Context, tmp_path: Path):
    """Opens a new, empty installation on the same backend, sharing the clock and settings."""

    @contextlib.contextmanager
    def open_one(folder: Path = tmp_path) -> Iterator[Context]:
        if ctx.db.dialect == "sqlite":
            (folder / "restored").mkdir(parents=True)
            db = Database(f"sqlite:///{folder / 'restored' / 'cadenza.db'}")
        else:
            db = Database(request.getfixturevalue("spare_pg_url"))
            empty_postgresql(db)
        try:
            yield Context(db=db, clock=ctx.clock, settings=ctx.settings)
        finally:
            db.dispose()

    return open_one


def contents(ctx: Context) -> dict[str, set[tuple]]:
    """Every enrollment, step run, message and event, with the columns that move."""
    with ctx.db.read() as session:
        return {
            "enrollments": {
                (e.id, e.contact_id, e.state) for e in session.scalars(select(Enrollment))
            },
            "step_runs": {
                (r.id, r.step_position, r.status) for r in session.scalars(select(StepRun))
            },
            "messages": {(m.id, m.message_id, m.status) for m in session.scalars(select(Message))},
            "events": {(e.id, e.kind, e.contact_id) for e in session.scalars(select(EmailEvent))},
        }


def has_rows(ctx: Context) -> bool:
    """Whether the installation has any enrollment (a missing table counts as none)."""
    from sqlalchemy import inspect

    if "enrollments" not in inspect(ctx.db.engine).get_table_names():
        return False
    with ctx.db.read() as session:
        return session.scalar(select(Enrollment.id).limit(1)) is not None


def ids(snapshot: dict[str, set[tuple]]) -> dict[str, set]:
    return {table: {row[0] for row in rows} for table, rows in snapshot.items()}


def sqlite_contents(path: Path) -> dict[str, set[tuple]]:
    """The same, read from a backup file directly (before any restore touched it)."""
    with contextlib.closing(sqlite3.connect(path)) as copy:
        queries = {
            "enrollments": "SELECT id, contact_id, state FROM enrollments",
            "step_runs": "SELECT id, step_position, status FROM step_runs",
            "messages": "SELECT id, message_id, status FROM messages",
            "events": "SELECT id, kind, contact_id FROM email_events",
        }
        return {table: set(copy.execute(sql).fetchall()) for table, sql in queries.items()}


def busy_installation(ctx, world, worker, contacts=12):
    """Enrollments part sent, with a reply and an unsubscribe recorded: rows of every kind."""
    sequence = world.make_sequence(steps=TWO_EMAILS, name="Two emails")
    people = world.contacts(contacts)
    enroll_ids(world, people, sequence=sequence)
    worker.run_until(ctx.clock.now() + timedelta(seconds=30))  # a few sent, most due
    with ctx.db.read() as session:
        sent = list(session.scalars(select(Message).where(Message.status == "sent")))
    assert len(sent) >= 2
    events.receive(ctx, events.ExternalEvent(EventKind.REPLY, "r-1", sent[0].message_id))
    events.receive(ctx, events.ExternalEvent(EventKind.UNSUBSCRIBE, "u-1", sent[1].message_id))


# --- a backup while sending ---------------------------------------------------------------


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_sqlite_backup_between_worker_ticks_is_one_instant_and_restores_whole(
    ctx, world, worker, tmp_path, fresh_location
):
    """The worker ticks (and sends) between every two pages the backup copies; the copy
    is still the database of the instant the backup began, never restarted."""
    busy_installation(ctx, world, worker)
    seen: list[int] = []
    at_start: dict[str, set[tuple]] = {}

    def progress(status, remaining, total):
        if not seen:
            at_start.update(contents(ctx))  # nothing has ticked since the snapshot
        seen.append(remaining)
        ctx.clock.advance(timedelta(seconds=7))
        worker.tick()

    path = tmp_path / "cadenza.backup"
    report = take_backup(ctx, path, pages=2, progress=progress)

    assert len(seen) > 10 and seen == sorted(seen, reverse=True)  # stepped, never restarted
    after = contents(ctx)
    assert len(after["messages"]) > len(at_start["messages"])  # the worker did send meanwhile
    assert sqlite_contents(path) == at_start
    assert report.size == path.stat().st_size and report.taken_at <= ctx.clock.now()

    with fresh_location() as restored:
        hold = restore_backup(restored, path)
        found = contents(restored)
    for table in ("enrollments", "step_runs", "events"):
        assert ids(found)[table] == ids(at_start)[table]
    # The restore composed the due emails it holds for review: messages of their own.
    composed = {m for m in found["messages"] if m[0] not in ids(at_start)["messages"]}
    assert ids(at_start)["messages"] <= ids(found)["messages"]
    assert {m[2] for m in composed} == {"unknown"} and 0 < len(composed) <= hold.steps
    with fresh_location(tmp_path / "again") as restored:
        restore_backup(restored, path)
        assert backup_taken_at(restored) == report.taken_at


def test_backup_while_a_worker_sends_restores_every_enrollment_message_and_event(
    ctx, world, worker, tmp_path, fresh_location
):
    """A worker thread sends throughout the backup (pg_dump, or SQLite's copy): the copy
    restored into a fresh location holds everything from before the backup began, and
    nothing that is not in the live database."""
    busy_installation(ctx, world, worker, contacts=20)
    before = contents(ctx)
    done = threading.Event()
    ticks = []

    def send_meanwhile():
        while not done.is_set():
            ctx.clock.advance(timedelta(seconds=7))
            ticks.append(worker.tick())

    sender = threading.Thread(target=send_meanwhile)
    sender.start()
    try:
        take_backup(ctx, tmp_path / "cadenza.backup", pages=1, progress=lambda *_: None)
    finally:
        done.set()
        sender.join()
    after = contents(ctx)
    assert ticks

    with fresh_location() as restored:
        restore_backup(restored, tmp_path / "cadenza.backup")
        found = contents(restored)
    for table in ("enrollments", "step_runs", "events"):
        assert ids(before)[table] <= ids(found)[table] <= ids(after)[table], table
    # Messages by Message-ID: the restore composes the due emails it holds (new rows).
    live = {m[1] for m in after["messages"]}
    restored_ids = {m[1] for m in found["messages"]}
    assert {m[1] for m in before["messages"]} <= restored_ids
    assert {m[2] for m in found["messages"] if m[1] not in live} <= {"unknown"}
    sent_before = {m[1] for m in before["messages"] if m[2] == "sent"}
    assert sent_before <= {m[1] for m in found["messages"] if m[2] == "sent"}


# --- restore never resends ----------------------------------------------------------------


@pytest.fixture
def sink():
    with SmtpSink() as server:
        yield server


@pytest.fixture
def smtp_world(world, sink):
    world.send_over_smtp(sink.host, sink.port, steps=TWO_EMAILS, name="Two emails")
    return world


def received(sink) -> list[tuple[str, str]]:
    """(recipient, subject) of every email the sink accepted, in order."""
    parsed = [
        (m.rcpt_tos[0], BytesParser(policy=default).parsebytes(m.data)) for m in sink.messages
    ]
    return [(to, str(message["Subject"])) for to, message in parsed]


def test_a_restored_installation_never_resends_what_went_out_after_the_backup(
    ctx, smtp_world, sink, worker, tmp_path, fresh_location
):
    """Back up; the old installation sends more; restore the backup elsewhere and run
    its worker: the sink gets none of the emails that left after the backup, each of
    them waits for review as `unknown`, and later steps go out as planned."""
    world = smtp_world
    start = ctx.clock.now()
    sent_early = world.contacts(3, prefix="early")  # step 1 before the backup
    enroll_ids(world, sent_early)
    worker.run_until(start + timedelta(minutes=5))
    soon = world.contacts(2, prefix="soon")  # due after the backup, before the restore
    enroll_ids(world, soon, send_at=start + timedelta(hours=2))
    later = world.contacts(2, prefix="later")  # due after the restore
    enroll_ids(world, later, send_at=start + timedelta(days=3))
    before_backup = received(sink)
    assert len(before_backup) == 3

    path = tmp_path / "cadenza.backup"
    take_backup(ctx, path)
    worker.run_until(start + timedelta(days=1, hours=1))  # the old installation goes on
    after_backup = [r for r in received(sink) if r not in before_backup]
    assert len(after_backup) == 5  # three second steps, two first steps
    worker.close()

    with fresh_location() as restored:
        hold = restore_backup(restored, path)
        assert (hold.steps, hold.reminders, hold.not_composed) == (5, 0, 0)
        new_worker = Worker(restored, WorkerOptions(batch_size=100), worker_id="restored")
        try:
            new_worker.run_until(start + timedelta(days=5))
        finally:
            new_worker.close()
        resent = [r for r in received(sink)[len(before_backup) + len(after_backup) :]]
        assert not set(resent) & set(after_backup)
        later_emails = {c.email for c in later}
        assert {to for to, _ in resent} == later_emails and len(resent) == 4  # both steps

        unknown = list_messages(restored, status="unknown")
        assert sorted((m.to_email, m.subject) for m in unknown) == sorted(after_backup)
        with restored.db.read() as session:
            flagged = session.scalars(select(Enrollment).where(Enrollment.needs_attention))
            assert len(list(flagged)) == 5
            [entry] = session.scalars(
                select(AuditEntry).where(AuditEntry.action == "installation.restore")
            )
        assert entry.data["held_steps"] == 5 and entry.data["backup_taken_at"]

        # A person settles one: delivered, so its sequence goes on without resending it.
        first = next(m for m in unknown if m.subject.startswith("Hi"))
        resolve_unknown(restored, first.id, delivered=True)
        count = len(received(sink))
        new_worker = Worker(restored, WorkerOptions(batch_size=100), worker_id="restored-2")
        try:
            new_worker.run_until(start + timedelta(days=8))
        finally:
            new_worker.close()
        [follow_up] = received(sink)[count:]
        assert follow_up[0] == first.to_email and follow_up[1].startswith("Again")


def test_restore_refuses_a_database_with_data_unless_forced(ctx, world, tmp_path):
    path = tmp_path / "cadenza.backup"
    take_backup(ctx, path)
    world.contact("after@corp.example")
    assert code_of(restore_backup, ctx, path) == "conflict"
    assert "after@corp.example" in emails_of_contacts(ctx)  # refused: nothing changed
    restore_backup(ctx, path, force=True)
    assert emails_of_contacts(ctx) == set()  # the backup had no contact yet
    with ctx.db.read() as session:
        assert session.get(Mailbox, world.mailbox.id) is not None


def emails_of_contacts(ctx) -> set[str]:
    with ctx.db.read() as session:
        return set(session.scalars(select(Contact.email)))


def test_backup_never_overwrites_and_restore_refuses_what_is_not_a_backup(ctx, world, tmp_path):
    taken = take_backup(ctx, tmp_path / "first.backup").path
    assert taken.stat().st_mode & 0o777 == 0o600  # every contact is in it: its owner's only
    existing = tmp_path / "taken.backup"
    existing.write_text("precious")
    assert code_of(take_backup, ctx, existing) == "conflict"
    assert existing.read_text() == "precious"
    assert code_of(take_backup, ctx, tmp_path / "missing" / "x.backup") == "validation_error"
    assert code_of(restore_backup, ctx, tmp_path / "nothing.backup", force=True) in (
        "not_found",
        "invalid_state",
    )
    junk = tmp_path / "junk.backup"
    junk.write_bytes(b"PGDMP? no: " + bytes(range(256)) * 8)
    assert code_of(restore_backup, ctx, junk, force=True) in ("validation_error", "invalid_state")
    with ctx.db.read() as session:  # the failed restores left the database as it was
        assert session.get(Mailbox, world.mailbox.id) is not None


# --- what a restore holds, one kind at a time ---------------------------------------------


def test_a_restore_holds_claimed_handing_paused_and_reminder_emails(
    ctx, world, tmp_path, fresh_location
):
    """In flight at the backup (claimed, being handed over), paused but resumable since,
    and a task reminder due: each may have left from the old installation, so each is
    unknown after the restore, with the Message-ID it already had. A paused enrollment
    that could not have fallen due by now stays paused."""
    from cadenza.services import worker_jobs
    from cadenza.services.delivery import claims
    from cadenza.services.delivery import handover as delivery
    from cadenza.services.enrollment.control import pause

    one_step = world.make_sequence(steps=TWO_EMAILS[:1], name="One email")
    in_flight = enroll_ids(world, world.contacts(2, prefix="flight"), sequence=one_step)
    start = ctx.clock.now()
    [soon] = enroll_ids(world, [world.contact("soon@corp.example")], sequence=one_step,
                        send_at=start + timedelta(hours=1))  # fmt: skip
    [late] = enroll_ids(world, [world.contact("late@corp.example")], sequence=one_step,
                        send_at=start + timedelta(hours=5))  # fmt: skip
    pause(ctx, soon)
    pause(ctx, late)
    reminding = world.make_sequence(
        steps=[{"type": "task", "task_title": "Call"}], settings={"task_reminders": True},
        name="Calls",
    )  # fmt: skip
    enroll_ids(world, [world.contact("task@corp.example")], sequence=reminding)
    worker_jobs.run_clocked_jobs(ctx, 100)  # the task is created; its reminder not yet sent

    [mailbox_id] = claims.mailboxes_with_due_email(ctx)
    claimed = claims.claim_emails(
        ctx,
        mailbox_id,
        "old",
        batch_size=2,
        horizon=timedelta(minutes=1),
        lease=timedelta(minutes=5),
    )
    assert [c.is_reminder for c in claimed] == [False, False, True]  # all three in flight
    delivery.hand_over(ctx, claimed[0], "old")
    enroll_ids(world, [world.contact("task2@corp.example")], sequence=reminding)
    worker_jobs.run_clocked_jobs(ctx, 100)  # a second task, its reminder due, not claimed
    with ctx.db.read() as session:
        before = {m.enrollment_id: m.message_id for m in session.scalars(select(Message))}
    path = tmp_path / "cadenza.backup"
    take_backup(ctx, path)

    ctx.clock.advance(timedelta(hours=2))  # the restore, two hours later
    with fresh_location() as restored:
        hold = restore_backup(restored, path)
        assert (hold.steps, hold.reminders) == (3, 2)
        with restored.db.read() as session:
            runs = {r.enrollment_id: r for r in session.scalars(select(StepRun))}
            messages = {m.enrollment_id: m for m in session.scalars(select(Message))}
            flagged = set(session.scalars(select(Enrollment.id).where(Enrollment.needs_attention)))
            reminders = [
                (m.status, m.subject)
                for m in session.scalars(select(Message).where(Message.step_run_id.is_(None)))
            ]
    assert {e: runs[e].status for e in [*in_flight, soon, late]} == {
        in_flight[0]: "unknown", in_flight[1]: "unknown", soon: "unknown", late: "paused"
    }  # fmt: skip
    assert flagged == {*in_flight, soon}
    assert {e: messages[e].message_id for e in in_flight} == {e: before[e] for e in in_flight}
    assert messages[soon].status == "unknown" and messages[soon].to_email == "soon@corp.example"
    assert "backup taken at" in runs[soon].last_error
    assert reminders == [("unknown", "Task due: Call")] * 2
    assert late not in messages


# --- the commands ---------------------------------------------------------------------------


def test_the_commands_back_up_and_restore_into_a_fresh_location(
    cli, ctx, world, worker, tmp_path, fresh_location
):
    busy_installation(ctx, world, worker)
    path = tmp_path / "cli.backup"
    assert "backed up the" in cli("backup", path)
    assert path.stat().st_size > 0
    assert "already exists" in cli("backup", path, ok=False)
    nowhere = {"CADENZA_DATABASE_URL": f"{PG_ADMIN_DSN.rpartition('/')[0]}/cadenza_no_such_db"}
    assert "cannot reach the database" in cli("backup", tmp_path / "x", env=nowhere, ok=False)
    refused = cli("restore", path, ok=False)
    assert "conflict" in refused and "already has data" in refused

    with fresh_location() as restored:
        # The data's secrets are sealed with the installation's key file: it goes too.
        env = {"CADENZA_DATABASE_URL": restored.db.url, "CADENZA_KEY_FILE": "/nonexistent"}
        out = cli("restore", path, env=env, ok=False)
        assert "key file" in out and not has_rows(restored)  # nothing half restored
        restored.db.dispose()  # (a restore on PostgreSQL waits for no other session)
        env["CADENZA_KEY_FILE"] = ctx.settings.key_file
        out = cli("restore", path, env=env)
        assert "held for review:" in out and "cadenza outbox review" in out
        restored.db.dispose()  # on SQLite its pool still holds the file the rename replaced
        found = ids(contents(restored))
    assert found["enrollments"] == ids(contents(ctx))["enrollments"]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_restore_refuses_while_a_worker_runs_on_the_sqlite_file(cli, database, world, tmp_path):
    from cadenza.engine.worker_lock import WorkerLock

    path = tmp_path / "cadenza.backup"
    cli("backup", path)
    with WorkerLock(database.url):
        refused = cli("restore", path, "--force", ok=False)
    assert "a worker is running on this database" in refused
    target = Path(database.engine.url.database)
    target.chmod(0o640)  # as the installation has it
    cli("restore", path, "--force")  # stopped: it may
    assert target.stat().st_mode & 0o777 == 0o640  # the restored file, as it was


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_postgresql_tools_missing_or_busy_database_are_refused_clearly(
    ctx, world, tmp_path, monkeypatch
):
    path = tmp_path / "cadenza.backup"
    take_backup(ctx, path)
    with ctx.db.read() as session:  # another session on the database: a server, say
        session.execute(select(Mailbox.id)).all()
        assert code_of(restore_backup, ctx, path, force=True) == "conflict"
    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_dump, no pg_restore
    with pytest.raises(CadenzaError) as caught:
        take_backup(ctx, tmp_path / "second.backup")
    assert "pg_dump is not installed" in caught.value.message
    assert not (tmp_path / "second.backup").exists()
