"""Every migration runs forward over a database full of rows, on SQLite and PostgreSQL.

The fixture is the first release's database: migrated to the first migration only, then
filled through that schema (plain inserts, as that release's code would have written
them) — users, tokens, mailboxes, contacts, a sequence and its steps, enrollments in
several states, step runs, messages, delivery attempts, events, tasks, the audit log.
Each later migration then runs one at a time, with rows added to the tables it brings,
and after every one all the rows are still there, unchanged. At the head, the services
work on the old rows: `cadenza db upgrade` seals the secrets stored in clear, and the
worker sends the step that was pending when the old release stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from cadenza.domain.clock import FrozenClock
from cadenza.services.context import Context
from cadenza.store import migrate
from cadenza.store.db import Database
from cadenza.store.types import UTCDateTime
from tests.conftest import BACKENDS, PG_ADMIN_DSN, widen_cli_consoles

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, when the old release stopped
JSON_COLUMNS = {
    "properties", "settings", "steps_snapshot", "settings_snapshot", "token_values", "data",
    "events", "payload", "filters", "trigger", "action", "chain", "options", "refusals",
    "links",
}  # fmt: skip
_STEP = {
    "delay_days": 0, "delay_hours": 0, "subject": None, "thread_with_step": None,
    "task_type": None, "task_title": None, "task_notes": None, "task_priority": "none",
    "continue_without_completing": False,
}  # fmt: skip
STEPS = [  # as an enrollment snapshots them
    {**_STEP, "position": 1, "type": "email", "subject": "Hi {{ contact.firstname }}",
     "body": "<p>Hello</p>"},
    {**_STEP, "position": 2, "type": "email", "delay_days": 3, "thread_with_step": 1,
     "body": "<p>Bump</p>"},
]  # fmt: skip
CLEAR_SMTP_PASSWORD = "hunter2-old-release"


def _type_of(column: str) -> Any:
    if column.endswith("_at"):
        return UTCDateTime()
    if column in JSON_COLUMNS:
        return sa.JSON()
    return None


class Filler:
    """Inserts rows through a schema of the past: columns typed by name, ids returned."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.written: dict[str, int] = {}  # rows written per table

    def add(self, table: str, key: str = "id", **values: Any) -> Any:
        columns = [sa.column(name, _type_of(name)) for name in values]
        if key not in values:
            columns.append(sa.column(key))
        target = sa.table(table, *columns)
        with self.db.engine.begin() as connection:
            new = connection.execute(
                sa.insert(target).values(**values).returning(target.c[key])
            ).scalar_one()
        self.written[table] = self.written.get(table, 0) + 1
        return new


def _message(filler: Filler, run: int, enrollment: int, mailbox: int, contact: int, to: str):
    message_id = f"<{uuid.uuid4().hex}@rep.corp.example>"
    raw = f"Message-ID: {message_id}\r\nTo: {to}\r\nSubject: Hi\r\n\r\nHello\r\n"
    return filler.add(
        "messages", step_run_id=run, enrollment_id=enrollment, mailbox_id=mailbox,
        contact_id=contact, message_id=message_id, from_email="rep@corp.example", to_email=to,
        subject="Hi", body_html="<p>Hello</p>", body_text="Hello", raw=raw, status="sent",
        smtp_reply="250 2.0.0 queued", handed_at=T0 - timedelta(days=1),
        sent_at=T0 - timedelta(days=1), created_at=T0 - timedelta(days=1),
    )  # fmt: skip


def fill_first_release(filler: Filler) -> dict[str, int]:
    """What the first release's users made: every table of the first migration has rows."""
    day = timedelta(days=1)
    add = filler.add
    rep = add(
        "users",
        email="rep@corp.example",
        firstname="Riley",
        lastname="Rep",
        role="member",
        can_enroll=True,
        timezone="America/New_York",
        password_hash=None,
        daily_enrollment_limit=None,
        created_at=T0 - 9 * day,
    )
    admin = add(
        "users",
        email="admin@corp.example",
        firstname="Ada",
        lastname="Min",
        role="admin",
        can_enroll=True,
        timezone="UTC",
        password_hash=None,
        daily_enrollment_limit=500,
        created_at=T0 - 9 * day,
    )
    add(
        "api_tokens",
        user_id=rep,
        name="crm sync",
        prefix="cdz_4f2a",
        token_hash=hashlib.sha256(b"old token").hexdigest(),
        created_at=T0 - 8 * day,
        last_used_at=T0 - day,
        revoked_at=None,
    )
    add("blocked_addresses", pattern="@competitor.example", created_at=T0 - 8 * day)
    add(
        "audit_log",
        actor_id=admin,
        action="user.create",
        subject_type="user",
        subject_id=rep,
        data={"email": "rep@corp.example"},
        at=T0 - 9 * day,
    )
    mailbox = add(
        "mailboxes",
        owner_id=rep,
        from_email="rep@corp.example",
        from_name="Riley",
        transport="capture",
        smtp_host=None,
        smtp_port=None,
        smtp_security="starttls",
        smtp_username=None,
        smtp_password=None,
        per_minute_limit=10,
        daily_limit=1000,
        connected=True,
        disconnected_reason=None,
        next_send_at=T0 - day,
        last_handed_at=T0 - day,
        created_at=T0 - 9 * day,
    )
    relay = add(
        "mailboxes",
        owner_id=admin,
        from_email="admin@corp.example",
        from_name="Ada",
        transport="smtp",
        smtp_host="smtp.corp.example",
        smtp_port=587,
        smtp_security="starttls",
        smtp_username="admin",
        smtp_password=CLEAR_SMTP_PASSWORD,
        per_minute_limit=10,
        daily_limit=1000,
        connected=True,
        disconnected_reason=None,
        next_send_at=None,
        last_handed_at=None,
        created_at=T0 - 9 * day,
    )
    contacts = {}
    for name, extra in (("ann", {}), ("bob", {}), ("cy", {"bounced_at": T0 - day / 2})):
        contacts[name] = add(
            "contacts",
            email=f"{name}@customer.example",
            email_key=f"{name}@customer.example",
            firstname=name.title(),
            lastname="Customer",
            company="Customer Inc",
            jobtitle="Buyer",
            phone=None,
            timezone="Europe/Paris",
            properties={"plan": "pro", "seats": 12},
            owner_id=rep,
            unsubscribed_at=None,
            blocked=False,
            created_at=T0 - 8 * day,
            updated_at=T0 - 8 * day,
            **{"bounced_at": None, **extra},
        )
    sequence = add(
        "sequences",
        owner_id=rep,
        name="Follow-up",
        settings={"follow_up_days": "weekdays"},
        archived_at=None,
        created_at=T0 - 8 * day,
        updated_at=T0 - 8 * day,
    )
    for position, step in enumerate(STEPS, 1):
        add(
            "sequence_steps",
            sequence_id=sequence,
            position=position,
            type="email",
            delay_days=step.get("delay_days", 0),
            delay_hours=0,
            subject=step.get("subject"),
            body=step["body"],
            thread_with_step=step.get("thread_with_step"),
            task_type=None,
            task_title=None,
            task_notes=None,
            task_priority=None,
            continue_without_completing=False,
        )
    ends = {
        "ann": ("active", None),
        "bob": ("unenrolled", "replied"),
        "cy": ("unenrolled", "bounced"),
    }
    enrollments, messages = {}, {}
    for name, contact in contacts.items():
        state, reason = ends[name]
        enrollments[name] = add(
            "enrollments",
            contact_id=contact,
            sequence_id=sequence,
            mailbox_id=mailbox,
            enrolled_by_id=rep,
            timezone="Europe/Paris",
            state=state,
            reason=reason,
            reason_detail=None,
            start_step=1,
            steps_snapshot=STEPS,
            settings_snapshot={"follow_up_days": "weekdays"},
            token_values={},
            bulk=False,
            needs_attention=False,
            send_at=None,
            enrolled_at=T0 - 2 * day,
            paused_at=None,
            ended_at=None if state == "active" else T0 - day / 2,
        )
        first = add(
            "step_runs",
            enrollment_id=enrollments[name],
            mailbox_id=mailbox,
            step_position=1,
            step_type="email",
            bulk_first=False,
            send_ready=False,
            status="sent",
            due_at=T0 - 2 * day,
            attempts=1,
            locked_until=None,
            locked_by=None,
            wait_reason=None,
            last_error=None,
            completed_at=T0 - day,
            created_at=T0 - 2 * day,
        )
        messages[name] = _message(
            filler, first, enrollments[name], mailbox, contact, f"{name}@customer.example"
        )
        add(
            "delivery_attempts",
            message_id=messages[name],
            attempt=1,
            outcome="sent",
            code=250,
            reply="250 2.0.0 queued",
            at=T0 - day,
        )
    add(
        "step_runs",
        enrollment_id=enrollments["ann"],
        mailbox_id=mailbox,
        step_position=2,
        step_type="email",
        bulk_first=False,
        send_ready=False,
        status="pending",
        due_at=T0 + 2 * day,
        attempts=0,
        locked_until=None,
        locked_by=None,
        wait_reason=None,
        last_error=None,
        completed_at=None,
        created_at=T0 - day,
    )
    add(
        "email_events",
        kind="reply",
        contact_id=contacts["bob"],
        enrollment_id=enrollments["bob"],
        message_id=messages["bob"],
        dedupe_key="reply:<bob-reply@customer.example>",
        data={"subject": "Re: Hi"},
        occurred_at=T0 - day / 2,
    )
    add(
        "email_events",
        kind="bounce",
        contact_id=contacts["cy"],
        enrollment_id=enrollments["cy"],
        message_id=messages["cy"],
        dedupe_key="bounce:cy",
        data={"code": 550, "hard": True},
        occurred_at=T0 - day / 2,
    )
    add("tasks", owner_id=rep, contact_id=contacts["ann"], enrollment_id=None,
        step_run_id=None, type="call", title="Call Ann", notes="About the pilot",
        priority="high", status="open", due_at=T0 + day, draft_subject=None,
        draft_body=None, remind_at=None, reminded_at=None, completed_at=None,
        created_at=T0 - day)  # fmt: skip
    return {"rep": rep, "admin": admin, "relay": relay, "ann": contacts["ann"],
            "ann_enrollment": enrollments["ann"]}  # fmt: skip


def fill_later(filler: Filler, revision: str, ids: dict[str, int]) -> None:
    """Rows in the tables a migration brought, so the migrations after it meet them."""
    add = filler.add
    if revision == "0002":
        hook = add(
            "webhooks",
            url="https://hooks.corp.example/cadenza",
            events=["enrolled", "step_sent"],
            secret="whsec_old_clear_secret",
            description="CRM",
            active=True,
            created_by_id=ids["admin"],
            created_at=T0 - 7 * timedelta(days=1),
        )
        delivery = add(
            "webhook_deliveries",
            webhook_id=hook,
            event_id=uuid.uuid4().hex,
            event_type="step_sent",
            payload={"enrollment_id": ids["ann_enrollment"]},
            status="delivered",
            attempts=1,
            next_attempt_at=T0 - timedelta(days=1),
            locked_until=None,
            last_status_code=200,
            last_error=None,
            created_at=T0 - timedelta(days=1),
            delivered_at=T0 - timedelta(days=1),
        )
        add(
            "webhook_attempts",
            delivery_id=delivery,
            at=T0 - timedelta(days=1),
            status_code=200,
            error=None,
            duration_ms=42,
        )
    elif revision == "0003":
        add(
            "app_secrets",
            key="name",
            name="link_signing_key",
            value="a" * 64,
            created_at=T0 - timedelta(days=6),
        )
    elif revision == "0004":
        add(
            "inbox_cursors",
            mailbox_id=ids["relay"],
            folder="INBOX",
            uidvalidity=1700000000,
            last_uid=812,
            polled_at=T0 - timedelta(minutes=5),
            last_error=None,
        )
    elif revision == "0005":
        with filler.db.engine.connect() as connection:
            company = connection.execute(
                sa.text("SELECT id FROM object_types WHERE name = 'company'")
            ).scalar_one()
        record = add(
            "records",
            type_id=company,
            name="Customer Inc",
            properties={"domain": "customer.example"},
            owner_id=ids["rep"],
            created_at=T0 - timedelta(days=5),
            updated_at=T0 - timedelta(days=5),
        )
        add(
            "associations",
            record_id=record,
            contact_id=ids["ann"],
            is_primary=True,
            created_at=T0 - timedelta(days=5),
        )
        listing = add(
            "contact_lists",
            name="Pilots",
            kind="static",
            filters=None,
            created_by_id=ids["rep"],
            created_at=T0 - timedelta(days=5),
            updated_at=T0 - timedelta(days=5),
        )
        add(
            "list_members",
            key="list_id",
            list_id=listing,
            contact_id=ids["ann"],
            added_at=T0 - timedelta(days=5),
        )
    elif revision == "0010":
        add("login_failures", account="rep@corp.example", address="203.0.113.9",
            at=T0 - timedelta(hours=1))  # fmt: skip
    elif revision == "0016":  # a column named `key`: not through add()'s own `key`
        outcomes = sa.table(
            "task_outcomes", sa.column("key"), sa.column("label"), sa.column("task_type"),
            sa.column("ends_enrollment", sa.Boolean()),
            sa.column("created_at", _type_of("created_at")),
        )  # fmt: skip
        with filler.db.engine.begin() as connection:
            connection.execute(
                sa.insert(outcomes).values(key="demo_booked", label="Demo booked",
                                           task_type="call", ends_enrollment=True, created_at=T0)
            )  # fmt: skip
        filler.written["task_outcomes"] = 1


def fingerprint(db: Database, tables: list[str]) -> dict[str, list[tuple]]:
    """Every row of these tables, whole, in a stable order: what must survive."""
    with db.engine.connect() as connection:
        result = {}
        for table in tables:
            rows = connection.execute(sa.text(f"SELECT * FROM {table}")).all()
            result[table] = sorted(tuple(str(v) for v in row) for row in rows)
        return result


def foreign_keys_hold(db: Database) -> bool:
    if db.dialect != "sqlite":
        return True  # PostgreSQL enforces them on every write
    with db.engine.connect() as connection:
        return connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []


@contextlib.contextmanager
def empty_database(backend: str, tmp_path) -> Iterator[Database]:
    if backend == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'old-release.db'}")
        try:
            yield db
        finally:
            db.dispose()
        return
    name = f"cadenza_upgrade_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    db = Database(f"{PG_ADMIN_DSN.rpartition('/')[0]}/{name}")
    try:
        yield db
    finally:
        db.dispose()
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def revisions() -> list[str]:
    """Every migration, oldest first."""
    script = ScriptDirectory.from_config(migrate._config())
    return [s.revision for s in reversed(list(script.walk_revisions()))]


@pytest.fixture(params=BACKENDS)
def old_release(request, tmp_path) -> Iterator[tuple[Database, dict[str, int], Filler]]:
    """A database of the first release, with data in every table it had."""
    with empty_database(request.param, tmp_path) as db:
        first = revisions()[0]
        migrate.upgrade(db, first)
        filler = Filler(db)
        ids = fill_first_release(filler)
        yield db, ids, filler


def test_every_migration_runs_forward_over_rows_and_keeps_them(old_release):
    db, ids, filler = old_release
    chain = revisions()
    assert len(chain) > 5 and chain[0] == "0001"
    for revision in chain[1:]:
        tables = sorted(filler.written)
        before = fingerprint(db, tables)
        migrate.upgrade(db, revision)
        after = fingerprint(db, tables)
        for table in tables:  # same rows, same values (new columns may follow the old ones)
            kept = [row[: len(before[table][0])] for row in after[table]] if before[table] else []
            assert len(after[table]) == filler.written[table], (revision, table)
            assert sorted(kept) == before[table], (revision, table)
        assert foreign_keys_hold(db), revision
        fill_later(filler, revision, ids)
    assert migrate.is_current(db)
    assert len(filler.written) >= 20  # rows in (nearly) every table of the schema


def test_db_upgrade_on_the_old_release_then_the_engine_carries_on(
    old_release, cli_env, monkeypatch
):
    """`cadenza db upgrade` on the first release's data: secrets stored in clear are
    sealed, and the worker sends Ann's second step, threaded with her first."""
    from typer.testing import CliRunner

    from cadenza.cli import app
    from cadenza.config import Settings
    from cadenza.engine.worker import Worker, WorkerOptions
    from cadenza.services.worker_jobs import mailbox_settings_of
    from cadenza.store.models import Enrollment, Mailbox, Message

    db, ids, _ = old_release
    monkeypatch.setenv("CADENZA_DATABASE_URL", db.url)
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "1 stored secret(s) sealed" in result.output and "is up to date" in result.output
    db.dispose()
    with db.engine.connect() as connection:
        stored = connection.execute(
            sa.select(Mailbox.__table__.c.smtp_password).where(Mailbox.id == ids["relay"])
        ).scalar_one()
    assert stored and CLEAR_SMTP_PASSWORD not in stored

    ctx = Context(db=db, clock=FrozenClock(T0), settings=Settings())
    relay = mailbox_settings_of(ctx, [ids["relay"]])[ids["relay"]]
    assert relay.password == CLEAR_SMTP_PASSWORD
    worker = Worker(ctx, WorkerOptions(batch_size=10), worker_id="after-upgrade")
    try:
        worker.run_until(T0 + timedelta(days=3))
    finally:
        worker.close()
    with ctx.db.read() as session:
        sent = list(
            session.scalars(
                sa.select(Message)
                .where(Message.enrollment_id == ids["ann_enrollment"])
                .order_by(Message.id)
            )
        )
        enrollment = session.get_one(Enrollment, ids["ann_enrollment"])
    assert [m.status for m in sent] == ["sent", "sent"]
    assert sent[1].in_reply_to == sent[0].message_id and sent[1].subject == "Re: Hi"
    assert enrollment.state == "finished"


@pytest.fixture
def cli_env(monkeypatch, tmp_path):
    """The CLI's surroundings are this test's own: its key file, no user config."""
    monkeypatch.setenv("CADENZA_KEY_FILE", str(tmp_path / "cadenza.key"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("CADENZA_CONFIG", raising=False)
    widen_cli_consoles(monkeypatch)


def test_a_backup_of_the_first_release_restores_into_this_one(old_release, tmp_path):
    """`cadenza restore` migrates what it restores: the first release's backup comes back
    at the head, and Ann's step that fell due meanwhile waits for review."""
    from cadenza.config import Settings
    from cadenza.services.delivery.outbox import list_messages
    from cadenza.services.operations.backup import restore_backup, take_backup

    db, ids, filler = old_release
    settings = Settings(database_url="sqlite://", key_file=str(tmp_path / "cadenza.key"))
    old = Context(db=db, clock=FrozenClock(T0), settings=settings)
    path = tmp_path / "first-release.backup"
    take_backup(old, path)
    backend = db.dialect
    (tmp_path / "new").mkdir()
    with empty_database(backend, tmp_path / "new") as target:
        restored = Context(db=target, clock=FrozenClock(T0 + timedelta(days=3)), settings=settings)
        hold = restore_backup(restored, path)
        target.dispose()
        assert migrate.is_current(target)
        assert (hold.steps, hold.reminders) == (1, 0)
        [held] = list_messages(restored, status="unknown")
        assert (held.enrollment_id, held.to_email) == (
            ids["ann_enrollment"],
            "ann@customer.example",
        )
        counts = fingerprint(target, sorted(filler.written))
        restore_backup(restored, path, force=True)  # over this release's tables, forced
        target.dispose()
        assert migrate.is_current(target) and fingerprint(target, ["contacts"]) == {
            "contacts": fingerprint(db, ["contacts"])["contacts"]
        }
    assert {table: len(rows) for table, rows in counts.items()} == {
        **filler.written, "messages": filler.written["messages"] + 1,
        "audit_log": filler.written["audit_log"] + 2,  # the backup's entry, the restore's
    }  # fmt: skip
