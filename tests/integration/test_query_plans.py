"""The worker's lookups read what is due, not what exists: checked on SQLite's plans,
and the claim's read on PostgreSQL's with lagging statistics.

A tick must cost what is due (issue: engine; bench/tick.py measures it). A plan that
SCANs a table that grows with use — step runs, tasks, messages, events — turns a tick
into a walk over everything ever scheduled, which no functional test would notice.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, update

from cadenza.engine.worker import Worker, WorkerOptions
from cadenza.services.delivery import claims
from cadenza.store.models import StepRun
from cadenza.store.prepared import Prepared
from tests.support.query_plans import plan_nodes
from tests.support.seed import seed_due_emails

# Tables that stay small (configuration), and partial indexes that hold only live rows.
SMALL = {
    "automation_rules", "webhooks", "mailboxes", "users", "object_types", "app_secrets",
    "dkim_keys",  # one per sending domain
}  # fmt: skip
LIVE_ONLY = {
    "ix_list_enroll_jobs_running",
    "ix_task_digests_pending",  # digests waiting for their send slot: at most one a user
}


def scans(connection, sql: str, params) -> list[str]:
    params = tuple(params) if isinstance(params, list) else params  # store/prepared.py's
    plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    found = []
    for *_, detail in plan:
        words = detail.split()
        if words[0] != "SCAN" or words[1] in SMALL or any(i in words for i in LIVE_ONLY):
            continue
        if words[1].startswith("anon_"):  # a subquery's rows: how it reads its own
            continue  # tables is on its own lines of the plan, checked like the rest
        found.append(detail)
    return found


def test_a_tick_reads_only_what_is_due(ctx, database):
    if database.dialect != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's; PostgreSQL plans by statistics")
    seed_due_emails(ctx, 300, due_at=ctx.clock.now() + timedelta(days=30))
    seed_due_emails(ctx, 20)
    statements = []

    def grab(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and not executemany:
            statements.append((statement, params))

    event.listen(database.engine, "before_cursor_execute", grab)
    worker = Worker(ctx, WorkerOptions(webhooks=False))
    try:
        assert worker.tick() >= 1
    finally:
        worker.close()
        event.remove(database.engine, "before_cursor_execute", grab)
    assert statements
    with database.engine.connect() as connection:
        bad = {
            sql: found for sql, params in statements if (found := scans(connection, sql, params))
        }
    assert bad == {}


def test_reports_read_their_period_not_the_history(ctx, database, world):
    """Every report, its daily series and a batch of each row export: each table that
    grows is reached through an index on the period's time column or a key, never scanned
    (bench/reports.py measures what that buys on a million emails)."""
    if database.dialect != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's; PostgreSQL plans by statistics")
    from cadenza.domain.enums import ExportRows, RepBasis, ReportBy
    from cadenza.domain.report_period import period
    from cadenza.services.analytics import exports, reports

    chosen = period(None, None, today=ctx.clock.now().date())
    queries = [
        reports.ReportQuery(ReportBy.SEQUENCE, chosen),
        reports.ReportQuery(ReportBy.REP, chosen, RepBasis.MAILBOX_OWNER, rep_id=world.user.id),
        reports.ReportQuery(ReportBy.STEP, chosen, sequence_id=world.sequence.id),
    ]
    statements = []

    def grab(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and not executemany:
            statements.append((statement, params))

    event.listen(database.engine, "before_cursor_execute", grab)
    try:
        for query in queries:
            reports.team_report(ctx, query)
            reports.daily_signals(ctx, query)
        for rows in ExportRows:
            "".join(exports.export_rows(ctx, rows, queries[0]))
    finally:
        event.remove(database.engine, "before_cursor_execute", grab)
    with database.engine.connect() as connection:
        bad = {
            sql: found for sql, params in statements if (found := scans(connection, sql, params))
        }
    assert len(statements) > 20 and bad == {}


def test_the_enrollment_rules_read_their_facts_from_indexes(ctx, database, world):
    """Exclusivity, re-enrollment "once" and days since last emailed: a bulk enrollment
    reads each from an index (ix_enrollments_contact_id, ix_enrollments_sequence_contact,
    ix_messages_contact_sent), never by walking every enrollment or email ever made."""
    if database.dialect != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's; PostgreSQL plans by statistics")
    from sqlalchemy import select

    from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
    from cadenza.store.models import Enrollment

    seed_due_emails(ctx, 300)
    with ctx.db.read() as session:
        ids = list(session.scalars(select(Enrollment.contact_id).limit(50)))
    rules = {"reenrollment": "once", "min_days_since_emailed": 7}
    target = world.make_sequence(name="Ruled", settings={"enrollment_rules": rules})
    statements = []

    def grab(conn, cursor, statement, params, context, executemany):
        if "enrollments" in statement or "messages" in statement:
            statements.append((statement, params))

    event.listen(database.engine, "before_cursor_execute", grab)
    try:
        request = EnrollRequest(
            sequence_id=target.id, user_id=world.user.id, dry_run=True,
            contacts=[ContactRequest(i) for i in ids],
        )  # fmt: skip
        assert {r.code for r in enroll(ctx, request)} == {"in_another_sequence"}
    finally:
        event.remove(database.engine, "before_cursor_execute", grab)
    rule_queries = [
        (sql, params) for sql, params in statements
        if "max(messages.sent_at)" in sql or "DISTINCT enrollments.contact_id" in sql
        or "JOIN sequences" in sql
    ]  # fmt: skip
    assert len(rule_queries) == 3
    with database.engine.connect() as connection:
        bad = {
            sql: found for sql, params in rule_queries if (found := scans(connection, sql, params))
        }
    assert bad == {}


def test_the_claim_finds_due_runs_by_key_whatever_the_statistics(ctx, database):
    """PostgreSQL plans by statistics, which lag: here they were taken while every run
    was due in a month, then the runs all fell due (a bulk enrollment due now). The
    claim's read must still take each mailbox's first runs from its own range and the
    rows by key, never the whole range of due runs through the due index: that read
    every due run of every mailbox in each claim transaction (docs/benchmarks.md)."""
    if database.dialect != "postgresql":
        pytest.skip("SQLite has no statistics here; its plans are checked above")
    boxes = seed_due_emails(ctx, 3000, mailboxes=60, due_at=ctx.clock.now() + timedelta(days=30))
    with database.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE step_runs")
        connection.commit()
    with ctx.db.transaction() as session:
        session.execute(update(StepRun).values(due_at=ctx.clock.now()))
    statement = claims._due_runs_statement(50)
    params = {"due_by": ctx.clock.now() + timedelta(seconds=2)}
    for i, box in enumerate(boxes[:50]):
        params[f"m{i}"], params[f"k{i}"] = box, 2
    sql = str(
        statement.params(**params).compile(
            dialect=database.engine.dialect, compile_kwargs={"literal_binds": True}
        )
    )
    with database.engine.connect() as connection:
        # priced out, as in the page plans' test: on a big table it would not be chosen
        connection.exec_driver_sql("SET enable_seqscan = off")
        [[plan]] = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql).all()
        connection.rollback()
    # how each scan of step_runs reads it: its index, or Seq Scan
    used = [
        node.get("Index Name") or node["Node Type"]
        for node in plan_nodes(plan)
        if node.get("Relation Name") == "step_runs"
    ]
    assert used and set(used) <= {"pk_step_runs", "ix_step_runs_mailbox_due"}, used


def test_the_hand_over_finds_its_rows_by_key_whatever_the_statistics(ctx, database, monkeypatch):
    """The hand-over's statements take their rows' keys as bound rows and check each
    row's state. With statistics taken before any email was claimed (a bulk enrollment
    sent at once), PostgreSQL read the state's index instead: every `prepared` message
    in each hand-over commit, a millisecond a commit of four emails (docs/benchmarks.md,
    the fourteenth session). Each statement of a tick that reads bound rows must reach
    messages, enrollments and step runs by their keys."""
    if database.dialect != "postgresql":
        pytest.skip("SQLite has no statistics here; its plans are checked above")
    # runs of the weeks ahead and emails sent before: reading all of either costs what
    # it would in use, not what it does in a test's few rows
    seed_due_emails(ctx, 3000, mailboxes=20, due_at=ctx.clock.now() + timedelta(days=30))
    boxes = seed_due_emails(ctx, 600, mailboxes=20)
    with database.engine.connect() as connection:
        connection.exec_driver_sql(
            "INSERT INTO messages (mailbox_id, message_id, from_email, to_email, subject,"
            " body_html, body_text, status, created_at, sent_at)"
            " SELECT %(box)s, 'sent-' || i, 'a@example.com', 'b@example.com', 's', 'h', 't',"
            " 'sent', now(), now() FROM generate_series(1, 5000) AS i",
            {"box": boxes[0]},
        )
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    try:
        _hand_over_reads_by_key(ctx, database, monkeypatch)
    finally:  # the statistics of this database's later tests are not these
        with database.engine.connect() as connection:
            connection.exec_driver_sql("DELETE FROM messages WHERE message_id LIKE 'sent-%%'")
            connection.commit()
            autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
            autocommit.exec_driver_sql("VACUUM ANALYZE messages, step_runs, enrollments")


def _hand_over_reads_by_key(ctx, database, monkeypatch) -> None:
    ran: list[tuple[str, object]] = []
    run = Prepared.run

    def recorded(self, connection, params=None):
        plan = self._plan(connection.dialect)
        if "unnest(" in plan.sql:
            ran.append((plan.sql, plan.parameters(params or {})))
        return run(self, connection, params)

    monkeypatch.setattr(Prepared, "run", recorded)
    worker = Worker(ctx, WorkerOptions(webhooks=False))
    try:
        assert worker.tick() == 600
    finally:
        worker.close()
    updates = {sql: params for sql, params in ran if sql.lstrip().startswith("UPDATE")}
    # the hand-over's, the sent steps' and the finished enrollments' (and the leases')
    assert {sql.split()[1] for sql in updates} >= {"messages", "enrollments", "step_runs"}
    # and the enrollment's other messages, by its key: whether this was its first email
    by_key = {"pk_messages", "pk_enrollments", "pk_step_runs", "ix_messages_enrollment_id"}
    with database.engine.connect() as connection:
        connection.exec_driver_sql("SET enable_seqscan = off")  # as on a big table
        cursor = connection.connection.driver_connection.cursor()
        for sql, params in updates.items():
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
            [[plan]] = cursor.fetchall()
            used = {
                node.get("Index Name") or node["Node Type"]
                for node in plan_nodes(plan)
                if node.get("Relation Name") in {"messages", "enrollments", "step_runs"}
                and node["Node Type"] != "ModifyTable"  # the row written, not a read
            }
            assert used <= by_key, (sql, used)
        connection.rollback()
