"""GET /metrics reports what really happened, on SQLite and PostgreSQL: enrollments made
through the services, the worker run on the frozen clock against a real SMTP server,
then the answer parsed with prometheus-client's own parser."""

from __future__ import annotations

import math
import socket
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import event

from cadenza.engine.inbox_poller import InboxPoller
from cadenza.engine.worker import Worker, WorkerOptions
from cadenza.services.accounts.mailboxes import update_mailbox
from cadenza.services.monitoring import heartbeat, state
from cadenza.store.models import Mailbox
from cadenza.web.app import create_app, create_metrics_app
from tests.conftest import crash_while_handing_over, enroll_ids
from tests.support.seed import seed_due_emails
from tests.support.smtp_sink import SmtpSink

TOKEN = "metrics-token-for-tests-0123456789"
TWO_STEPS = [
    {"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"},
    {"type": "email", "delay_days": 2, "thread_with_step": 1, "body": "<p>Bump</p>"},
]


@pytest.fixture
def sink():
    with SmtpSink(auth={"rep": "s3cret-pass"}) as server:
        yield server


@pytest.fixture
def smtp_world(world, sink):
    """The world's user sends from a real SMTP mailbox, through a two-step sequence."""
    world.send_over_smtp(
        sink.host,
        sink.port,
        steps=TWO_STEPS,
        name="Two steps",
        smtp_username="rep",
        smtp_password="s3cret-pass",
    )
    world.ctx.settings = world.ctx.settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})
    return world


def scrape(app) -> dict[tuple[str, frozenset], float]:
    answer = TestClient(app).get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    key = (name, frozenset((k, str(v)) for k, v in labels.items()))
    assert key in samples, f"{name}{labels} not among {sorted(k for k in samples if k[0] == name)}"
    return samples[key]


def test_metrics_follow_a_real_send(ctx, smtp_world, sink, worker):
    mailbox = str(smtp_world.mailbox.id)
    enroll_ids(smtp_world, smtp_world.contacts(3))
    before = scrape(create_app(ctx))
    assert value(before, "cadenza_step_runs_due", mailbox=mailbox, reason="none") == 3
    assert value(before, "cadenza_enrollments", state="active") == 3
    assert value(before, "cadenza_workers") == 0
    assert math.isinf(value(before, "cadenza_worker_last_tick_age_seconds"))

    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    assert len(sink.message_ids()) == 3
    app = create_app(ctx)
    scrape(app)
    after = scrape(app)  # the app counts a request once answered: the first one, here
    me = {"worker": "test-worker"}
    assert value(after, "cadenza_worker_emails_handed_over_total", mailbox=mailbox, **me) == 3
    assert value(after, "cadenza_worker_email_results_total",
                 mailbox=mailbox, outcome="sent", **me) == 3  # fmt: skip
    assert value(after, "cadenza_worker_send_lateness_seconds_count", **me) == 3
    assert value(after, "cadenza_worker_tick_seconds_count", **me) >= 1
    assert value(after, "cadenza_worker_claim_seconds_count", **me) >= 1
    assert value(after, "cadenza_mailbox_sent_24h", mailbox=mailbox) == 3
    assert value(after, "cadenza_mailbox_connected", mailbox=mailbox) == 1
    assert value(after, "cadenza_step_runs_scheduled", mailbox=mailbox, reason="none") == 3
    assert not [key for key in after if key[0] == "cadenza_step_runs_due"]
    assert value(after, "cadenza_messages_unsettled", mailbox=mailbox, status="unknown") == 0
    assert value(after, "cadenza_enrollments", state="active") == 3
    assert value(after, "cadenza_workers") == 1
    # The worker's last heartbeat came within HEARTBEAT_SECONDS of its last tick.
    assert 0 <= value(after, "cadenza_worker_last_tick_age_seconds") <= 5 * 60
    assert value(after, "cadenza_schema_up_to_date") == 1
    http = {"method": "GET", "route": "/metrics"}
    assert value(after, "cadenza_http_requests_total", status=200, **http) == 1
    assert value(after, "cadenza_http_request_duration_seconds_count", **http) == 1


def test_unknown_sends_and_disconnected_mailboxes_show(ctx, world, worker):
    ctx.settings = ctx.settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})
    mailbox = str(world.mailbox.id)
    world.sequence = world.make_sequence(steps=TWO_STEPS[:1], name="One")
    enroll_ids(world, [world.contact()])
    crash_while_handing_over(ctx, worker)
    samples = scrape(create_app(ctx))
    assert value(samples, "cadenza_messages_unsettled", mailbox=mailbox, status="unknown") == 1
    assert value(samples, "cadenza_enrollments_needing_attention") == 1

    enroll_ids(world, [world.contact("bo@corp.example")], sequence=world.make_sequence(
        steps=TWO_STEPS[:1], name="Another"))  # fmt: skip
    with ctx.db.transaction() as session:  # as when the server refused its credentials
        session.get(Mailbox, world.mailbox.id).connected = False
    worker.tick()
    ctx.clock.advance(timedelta(minutes=10))
    samples = scrape(create_app(ctx))
    assert value(samples, "cadenza_mailbox_connected", mailbox=mailbox) == 0
    assert value(samples, "cadenza_step_runs_due", mailbox=mailbox,
                 reason="mailbox_disconnected") == 1  # fmt: skip
    assert value(samples, "cadenza_step_runs_oldest_due_seconds", mailbox=mailbox) == 600


def test_counters_of_several_workers_stay_apart(ctx, world):
    """Each worker's counters come from its own heartbeat row, labelled with its id."""
    ctx.settings = ctx.settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})
    world.sequence = world.make_sequence(steps=TWO_STEPS[:1], name="One")
    enroll_ids(world, world.contacts(2))
    first = Worker(ctx, WorkerOptions(batch_size=1), worker_id="w-one")
    second = Worker(ctx, WorkerOptions(batch_size=100), worker_id="w-two")
    first.tick()
    ctx.clock.advance(timedelta(minutes=1))  # the mailbox's spacing: the next slot
    second.tick()
    samples = scrape(create_app(ctx))
    mailbox = str(world.mailbox.id)
    name = "cadenza_worker_emails_handed_over_total"
    assert value(samples, name, mailbox=mailbox, worker="w-one") == 1
    assert value(samples, name, mailbox=mailbox, worker="w-two") == 1
    assert value(samples, "cadenza_workers") == 2
    for engine in (first, second):
        engine.close()


def test_the_separate_listener_answers_without_a_token(ctx, world):
    app = create_app(ctx)  # no metrics token: /metrics on the main address is 404
    assert TestClient(app).get("/metrics").status_code == 404
    TestClient(app).get("/healthz")
    answer = TestClient(create_metrics_app(app)).get("/metrics")
    assert answer.status_code == 200
    families = {f.name for f in text_string_to_metric_families(answer.text)}
    assert {"cadenza_enrollments", "cadenza_http_requests"} <= families
    assert 'route="/healthz"' in answer.text  # the main app's requests


def test_a_scrape_reads_indexes_not_the_big_tables(ctx, database, world):
    """Every count a scrape makes over a table that grows (messages, step runs,
    enrollments, webhook deliveries) is served by an index, never by reading the rows
    with their bodies, snapshots and payloads (SQLite's plans; docs/operations.md)."""
    if database.dialect != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's; PostgreSQL plans by statistics")
    seed_due_emails(ctx, 50, due_at=ctx.clock.now() + timedelta(days=3))
    statements = []

    def grab(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, params))

    event.listen(database.engine, "before_cursor_execute", grab)
    try:
        state.snapshot(ctx)
    finally:
        event.remove(database.engine, "before_cursor_execute", grab)
    growing = {"messages", "step_runs", "enrollments", "webhook_deliveries"}
    with database.engine.connect() as connection:
        plans = [
            detail
            for sql, params in statements
            for *_, detail in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)
        ]
    read = [d for d in plans if d.split()[0] in ("SCAN", "SEARCH") and d.split()[1] in growing]
    assert len(read) >= 7
    assert all(" INDEX " in d for d in read), read


def test_inbox_polls_are_counted_by_result(ctx, world, worker):
    """A mailbox whose IMAP server cannot be reached: the worker's poller counts the
    failed poll, and its heartbeat brings the count to /metrics."""
    ctx.settings = ctx.settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    update_mailbox(ctx, world.mailbox.id, {
        "imap_host": "127.0.0.1", "imap_port": closed, "imap_security": "none",
        "imap_username": "rep", "imap_password": "imap-secret",
    })  # fmt: skip
    [result] = InboxPoller(ctx, metrics=worker.metrics, idle=False).poll_once()
    assert result.error
    worker.tick()
    samples = scrape(create_app(ctx))
    polls = "cadenza_worker_inbox_polls_total"
    mailbox = str(world.mailbox.id)
    assert value(samples, polls, mailbox=mailbox, result="error", worker="test-worker") == 1


def test_workers_gone_quiet_leave_the_report_then_the_table(ctx):
    """/metrics reports workers heard from in the last 15 minutes; a worker silent for a
    day is forgotten by the next heartbeat of any other."""
    started = ctx.clock.now()
    heartbeat.beat(ctx, "gone", started, {"families": []})
    ctx.clock.advance(timedelta(minutes=16))
    heartbeat.beat(ctx, "here", started, {"families": []})
    assert [b.worker_id for b in heartbeat.recent(ctx)] == ["here"]
    assert heartbeat.last_tick(ctx) == ctx.clock.now()
    ctx.clock.advance(timedelta(days=1))
    heartbeat.beat(ctx, "here", started, {"families": []})
    assert [b.worker_id for b in heartbeat.recent(ctx, within=timedelta(days=7))] == ["here"]
