"""The retention policy (services/retention.py) on an injected clock, on both databases:
old bodies replaced by a note, old opens and clicks deleted, emails not yet final left
alone, at most one run per interval, and the worker's tick running it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select

from cadenza.domain.enums import EventKind, MessageStatus
from cadenza.domain.link_tokens import Purpose, sign
from cadenza.services import retention
from cadenza.services.accounts.link_secret import link_secret
from cadenza.services.analytics.engagement import engagement
from cadenza.services.signals import tracking
from cadenza.services.signals.effects import Signal, record_signal
from cadenza.store.models import AuditEntry, EmailEvent, JobMark, Message
from tests.conftest import crash_while_handing_over, enroll_ids

STEPS = [
    {"type": "email", "subject": "Plan for {{ contact.firstname }}",
     "body": '<p>Hello, see <a href="https://example.test/plan">our plan</a></p>'},
]  # fmt: skip
HUMAN = "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Mail"
NOTE = "[body removed after 30 days by the retention policy]"


def with_policy(ctx, body_days=30, event_days=90, interval=60):
    ctx.settings = ctx.settings.model_copy(
        update={"retention_body_days": body_days, "retention_event_days": event_days,
                "retention_interval_minutes": interval}
    )  # fmt: skip


def days_after(ctx, message, days, extra=timedelta(seconds=1)):
    """The clock set to `days` days after `message` was composed (plus `extra`)."""
    ctx.clock.set(message.created_at + timedelta(days=days) + extra)


def messages(ctx) -> dict[str, Message]:
    with ctx.db.read() as session:
        return {m.to_email: m for m in session.scalars(select(Message))}


def kinds(ctx) -> list[str]:
    with ctx.db.read() as session:
        return sorted(str(k) for k in session.scalars(select(EmailEvent.kind)))


@pytest.fixture
def mail(ctx, world, worker):
    """Cid's email of unknown outcome (waiting for a person), then Ann's and Bob's sent,
    Ann's opened twice and clicked, Bob's opened; an hour later Dan's sent, and a reply."""
    world.sequence = world.make_sequence(
        steps=STEPS, settings={"track_opens": True, "track_clicks": True}
    )
    enroll_ids(world, [world.contact("cid@corp.example")])
    crash_while_handing_over(ctx, worker)
    enroll_ids(world, [world.contact("ann@corp.example"), world.contact("bob@corp.example")])
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    ctx.clock.advance(timedelta(minutes=10))  # past the open grace period
    sent = messages(ctx)
    for address in ("ann@corp.example", "ann@corp.example", "bob@corp.example"):
        token = sign(link_secret(ctx), Purpose.OPEN, sent[address].tracking_id)
        tracking.record_open(ctx, token, HUMAN)
    click = sign(link_secret(ctx), Purpose.CLICK, sent["ann@corp.example"].tracking_id, 0)
    tracking.record_click(ctx, click, HUMAN)
    record_signal(ctx, Signal(EventKind.REPLY, "reply-bob", message_pk=sent["bob@corp.example"].id))
    ctx.clock.advance(timedelta(hours=1))
    enroll_ids(world, [world.contact("dan@corp.example")])
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    assert messages(ctx)["cid@corp.example"].status == MessageStatus.UNKNOWN
    assert messages(ctx)["dan@corp.example"].status == MessageStatus.SENT
    return sent


def test_old_bodies_give_way_to_a_note_and_unsettled_emails_are_kept(ctx, mail):
    with_policy(ctx)
    days_after(ctx, mail["bob@corp.example"], 30)  # Ann's and Bob's are 30 days old, Dan's not
    report = retention.run_due(ctx)

    assert report == retention.RetentionReport(bodies_removed=2, events_deleted=0)
    now = messages(ctx)
    for address in ("ann@corp.example", "bob@corp.example"):
        gone = now[address]
        assert (gone.body_html, gone.body_text, gone.raw) == (NOTE, NOTE, None)
        assert gone.body_removed_at == ctx.clock.now()
        # The headers stay: who, when, which subject, the thread.
        assert gone.subject == "Plan for Ann" if address.startswith("ann") else "Plan for Bob"
        assert gone.message_id == mail[address].message_id and gone.sent_at is not None
    assert "our plan" in now["dan@corp.example"].body_html  # younger
    assert "our plan" in now["cid@corp.example"].body_html  # unknown: a person decides first
    assert now["cid@corp.example"].body_removed_at is None
    assert kinds(ctx) == ["click", "open", "open", "open", "reply"]
    with ctx.db.read() as session:
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "retention.run"))
    assert entry.data == {"bodies_removed": 2, "events_deleted": 0}


def test_a_run_at_most_once_per_interval(ctx, database, mail):
    with_policy(ctx, interval=60)
    dan = messages(ctx)["dan@corp.example"]
    days_after(ctx, dan, 30, -timedelta(minutes=30))
    assert retention.run_due(ctx).bodies_removed == 2
    with ctx.db.read() as session:
        ran_at = session.get(JobMark, retention.JOB).ran_at
    assert ran_at == ctx.clock.now()

    ctx.clock.advance(timedelta(minutes=59))  # Dan's is 30 days old now: not yet looked at
    statements = []

    def grab(*args):
        statements.append(args[2])

    event.listen(database.engine, "before_cursor_execute", grab)
    try:
        assert retention.run_due(ctx) == retention.RetentionReport()
    finally:
        event.remove(database.engine, "before_cursor_execute", grab)
    assert statements == []  # a tick between runs costs this process no query at all
    assert "our plan" in messages(ctx)["dan@corp.example"].body_html

    ctx.clock.advance(timedelta(minutes=1))
    assert retention.run_due(ctx).bodies_removed == 1
    assert messages(ctx)["dan@corp.example"].body_text == NOTE


def test_old_opens_and_clicks_are_deleted_and_leave_the_figures(ctx, world, mail):
    with_policy(ctx, body_days=None, event_days=90)
    ann = mail["ann@corp.example"]
    assert engagement(ctx, message_id=ann.id).opens == 2
    with ctx.db.read() as session:
        moments = list(session.scalars(select(EmailEvent.occurred_at)))
    ctx.clock.set(min(moments) + timedelta(days=90) - timedelta(seconds=1))
    assert retention.run_due(ctx).events_deleted == 0

    ctx.clock.set(max(moments) + timedelta(days=90, hours=1))  # past the interval too
    report = retention.run_due(ctx)

    assert report == retention.RetentionReport(bodies_removed=0, events_deleted=4)
    assert kinds(ctx) == ["reply"]  # replies decide who is emailed again: kept
    assert engagement(ctx, message_id=ann.id).opened == 0  # documented: old opens leave
    assert "our plan" in messages(ctx)["ann@corp.example"].body_html  # bodies: policy off


def test_a_backlog_is_worked_off_in_batches_over_ticks(ctx, mail, monkeypatch):
    with_policy(ctx)
    monkeypatch.setattr(retention, "BATCHES_PER_RUN", 1)
    ctx.clock.advance(timedelta(days=31))

    first = retention.run_due(ctx, batch_size=2)
    assert (first.bodies_removed, first.finished) == (2, False)
    with ctx.db.read() as session:
        assert session.get(JobMark, retention.JOB) is None  # not done: the next tick goes on
    second = retention.run_due(ctx, batch_size=2)
    assert (second.bodies_removed, second.finished) == (1, True)
    assert sum(m.body_removed_at is not None for m in messages(ctx).values()) == 3


def test_off_by_default_and_run_by_the_workers_tick(ctx, mail, worker):
    ctx.clock.advance(timedelta(days=400))
    worker.tick()
    assert all(m.body_removed_at is None for m in messages(ctx).values())
    with ctx.db.read() as session:
        assert session.get(JobMark, retention.JOB) is None

    with_policy(ctx)
    worker.tick()

    assert {a for a, m in messages(ctx).items() if m.body_removed_at} == {
        "ann@corp.example", "bob@corp.example", "dan@corp.example",
    }  # fmt: skip
    assert kinds(ctx) == ["reply"]


def test_a_run_reads_index_ranges_not_whole_tables(ctx, database, mail):
    """Its cost follows what is old, not what exists: no SCAN of messages or events."""
    if database.dialect != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's; PostgreSQL plans by statistics")
    with_policy(ctx)
    ctx.clock.advance(timedelta(days=400))
    statements = []

    def grab(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and not executemany:
            statements.append((statement, params))

    event.listen(database.engine, "before_cursor_execute", grab)
    try:
        assert retention.run_due(ctx).bodies_removed == 3
    finally:
        event.remove(database.engine, "before_cursor_execute", grab)
    with database.engine.connect() as connection:
        plans = [
            detail
            for sql, params in statements
            for *_, detail in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)
        ]
    assert any("ix_messages_bodies_kept" in p for p in plans), plans
    assert any("ix_email_events_kind_occurred" in p for p in plans), plans
    assert [p for p in plans if p.startswith("SCAN")] == []


def test_the_migration_goes_down_and_up_keeping_every_email(ctx, database, mail):
    """0012 adds and drops messages.body_removed_at in place: a rebuild of messages on
    SQLite would cascade into delivery_attempts."""
    from alembic import command
    from sqlalchemy import func

    from cadenza.store import migrate
    from cadenza.store.models import DeliveryAttempt

    def rows():
        with ctx.db.read() as session:
            return [session.scalar(select(func.count()).select_from(model))
                    for model in (Message, DeliveryAttempt)]  # fmt: skip

    before = rows()
    assert before[1] == 3  # Ann's, Bob's and Dan's sends
    config = migrate._config()
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0011")
    migrate.upgrade(database)
    assert migrate.is_current(database)
    assert rows() == before
