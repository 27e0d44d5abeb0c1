"""The list pages read through indexes, never by walking a table that grows with use.

Issue 15 §4: on an installation of a million contacts and ten million step runs, the
contacts index, the enrollments and outbox pages, a sequence's page and analytics and
the stats API must answer within 2x of a small one (bench/large.py measures it). No
functional test notices a query that reads every row; this one asks the database how
it would run each statement a page actually sends (captured with an SQLAlchemy event,
not copied here), on both databases:

- SQLite: `EXPLAIN QUERY PLAN`; a `SCAN` of a growing table fails;
- PostgreSQL: `EXPLAIN` with sequential scans priced out (`enable_seqscan = off`, so
  the tiny test tables do not make a scan the cheap choice); a `Seq Scan` on a growing
  table then means no index could serve the statement;
- unless the statement reads rows in its own order (no sort of them all in the plan)
  under a LIMIT, along an index or along the key with no filter: it stops after a page
  (or the index's capped count). A search for "part of a name" is such a walk: it
  stops at a page of matches, so a rare word walks further (docs/benchmarks.md,
  "Large installation").

An index is not enough for a sequence's page, its analytics and its statistics: the
sequence's own rows, read through an index on its id, still grow with it. Their figures
come from the sequence's counters (services/counters), so these pages must send no
count, sum or GROUP BY over a table that grows, except over live enrollments (a count
of those follows the sequence's current size, like the list of them it shows).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import event

from cadenza.services.accounts.users import create_token, create_user
from tests.support.query_plans import plan_nodes
from tests.support.report_history import seed_history, team
from tests.support.rows import insert_contacts
from tests.support.seed import seed_due_emails
from tests.ui.conftest import Ui

GROWING = {
    "contacts", "enrollments", "step_runs", "messages", "email_events", "tasks",
    "list_members", "delivery_attempts", "audit_log", "associations", "records",
}  # fmt: skip
_AGGREGATE = re.compile(r"\b(count|sum)\s*\(|\bgroup\s+by\b", re.IGNORECASE)
_TABLES = re.compile(r"\b(?:from|join)\s+\"?(\w+)", re.IGNORECASE)


def counts_history(sql: str) -> bool:
    """An aggregate over rows a sequence accumulates (its enrollments ever, their runs,
    emails, events, tasks): a figure that should have been read from its counters."""
    live_only = re.search(r"enrollments\.state IN", sql, re.IGNORECASE)
    tables = {name.lower() for name in _TABLES.findall(sql)}
    return bool(_AGGREGATE.search(sql)) and bool(tables & GROWING) and not live_only


def sqlite_scans(connection, sql: str, params) -> list[str]:
    params = tuple(params) if isinstance(params, list) else params  # store/prepared.py's
    plan = [row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
    in_order = bool(re.search(r"\sLIMIT\s", sql)) and not any(
        "TEMP B-TREE" in detail for detail in plan
    )
    return [
        detail
        for detail in plan
        if detail.split()[0] == "SCAN"
        and detail.split()[1] in GROWING
        and not (in_order and _stops_early(sql, detail))
    ]


def _stops_early(sql: str, detail: str) -> bool:
    """A walk in the page's order under a LIMIT that stops after a page: along an index
    (the sort's), or along the table's key with nothing to filter out; or the index's
    count, capped by its LIMIT. Along the key WITH a filter (failed emails among all the
    emails) it could walk every row to find a page: that fails."""
    capped_count = "count(*)" in sql
    # "Part of a name or address" (LIKE '%ann%'): no b-tree index serves it on either
    # database; the walk stops at a page of matches (a rare word walks further).
    search = " LIKE " in sql
    filtered = re.search(r"\sWHERE\s", sql)
    return "INDEX" in detail.split() or not filtered or capped_count or search


def postgresql_scans(connection, sql: str, params) -> list[str]:
    params = tuple(params) if isinstance(params, list) else params  # store/prepared.py's
    connection.exec_driver_sql("SET enable_seqscan = off")
    plan = [row[0] for row in connection.exec_driver_sql("EXPLAIN " + sql, params)]
    in_order = bool(re.search(r"\sLIMIT\s", sql)) and not any(
        " Sort " in f" {line.strip()} " for line in plan
    )
    return [
        line.strip()
        for line in plan
        if "Seq Scan on " in line
        and line.split("Seq Scan on ")[1].split()[0] in GROWING
        and not in_order
    ]


@pytest.fixture
def installation(ctx, world):
    """Finished enrollments with their emails and events, live ones with a scheduled step,
    and an admin signed in on the web app and holding an API token."""
    history = team(ctx, reps=3, sequences=4)
    now = ctx.clock.now()
    seed_history(
        ctx, history, enrollments=60, messages=300, start=now - timedelta(days=90),
        end=now - timedelta(hours=1),
    )  # fmt: skip
    seed_due_emails(ctx, 40, due_at=now + timedelta(days=2))
    admin = create_user(ctx, "boss@example.com", role="admin", password="boss-secret")
    ui = Ui(ctx, world).sign_in("boss@example.com", "boss-secret", "/contacts")
    ui.client.headers["Authorization"] = "Bearer " + create_token(ctx, admin.id, "plans").token
    return ui, history.sequence_ids[0]


def sequence_pages(sequence_id: int) -> list[str]:
    return [
        f"/sequences/{sequence_id}",
        f"/api/v1/sequences/{sequence_id}/analytics",
        f"/api/v1/sequences/{sequence_id}/stats",
    ]


def pages(sequence_id: int) -> list[str]:
    """What bench/large.py times: the same pages, the same parameters."""
    return [
        "/contacts",
        "/contacts?q=corp",
        "/contacts?timezone=Europe/Paris&status=reachable",
        "/contacts?sort=created&desc=true",
        "/contacts?sort=company&page=2",
        "/contacts?enrolled=yes",
        "/api/v1/contacts?q=corp",
        "/api/v1/contacts?cursor=5",
        "/enrollments",
        f"/enrollments?sequence={sequence_id}&state=finished",
        "/api/v1/enrollments?state=active&order=newest",
        "/outbox",
        "/api/v1/messages?status=failed",
        "/api/v1/messages",
        *sequence_pages(sequence_id),
    ]


def test_the_list_pages_read_through_indexes(ctx, database, installation):
    ui, sequence_id = installation
    statements: list[tuple[str, str, object]] = []
    current = {"page": ""}

    def grab(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")) and not executemany:
            statements.append((current["page"], statement, params))

    event.listen(database.engine, "before_cursor_execute", grab)
    try:
        for path in pages(sequence_id):
            current["page"] = path
            answer = ui.client.get(path)
            assert answer.status_code == 200, (path, answer.text[:300])
    finally:
        event.remove(database.engine, "before_cursor_execute", grab)
    assert {page for page, *_ in statements} == set(pages(sequence_id))
    check = sqlite_scans if database.dialect == "sqlite" else postgresql_scans
    with database.engine.connect() as connection:
        bad = [
            (page, sql, found)
            for page, sql, params in statements
            if (found := check(connection, sql, params))
        ]
        connection.rollback()
    bad += [
        (page, sql, "counts the sequence's rows: read its counters")
        for page, sql, _ in statements
        if page in sequence_pages(sequence_id) and counts_history(sql)
    ]
    assert bad == [], "\n\n".join(f"{page}\n{sql}\n{found}" for page, sql, found in bad)


def test_postgresql_finds_a_searched_word_through_its_trigram_index(ctx, database, world):
    """Every statement a search sends (the index's page and its capped count, the API's
    page) finds a word few contacts hold through ix_contacts_search_trgm (migration 0028).

    No b-tree index serves `LIKE '%word%'`: without it the count read contacts until it
    had 10,001 matches (all of them, for a rare word) and the pages walked their order to
    the end. The test above lets a search pass as a walk that stops at a page of matches,
    so it would not notice the trigram index gone; this one fails then.
    """
    if database.dialect != "postgresql":
        pytest.skip("pg_trgm is PostgreSQL's; SQLite's search walks (docs/benchmarks.md)")
    insert_contacts(ctx, 5000, lambda i: "Zyxwvut Ltd" if i % 500 == 0 else f"Firm {i % 40}")
    # As autovacuum leaves them: statistics, and the index's pending list (new entries,
    # which every scan reads in full until a vacuum files them) folded in.
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql("VACUUM ANALYZE contacts")
    admin = create_user(ctx, "boss@example.com", role="admin", password="boss-secret")
    ui = Ui(ctx, world).sign_in("boss@example.com", "boss-secret", "/contacts")
    ui.client.headers["Authorization"] = "Bearer " + create_token(ctx, admin.id, "plans").token
    searches: list[tuple[str, object]] = []

    def grab(conn, cursor, statement, params, context, executemany):
        if " LIKE " in statement and statement.lstrip().upper().startswith("SELECT"):
            searches.append((statement, params))

    event.listen(database.engine, "before_cursor_execute", grab)
    try:
        for path in ("/contacts?q=ZYXWV", "/api/v1/contacts?q=zyxwv"):
            answer = ui.client.get(path)
            assert answer.status_code == 200 and "Zyxwvut Ltd" in answer.text, path
    finally:
        event.remove(database.engine, "before_cursor_execute", grab)
    assert len(searches) == 3  # the index's count and page, the API's page
    with database.engine.connect() as connection:
        for sql, params in searches:
            [[plan]] = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql, params).all()
            nodes = plan_nodes(plan)
            used = {n.get("Index Name") for n in nodes}
            assert "ix_contacts_search_trgm" in used, (sql, nodes)


def test_the_contacts_index_reads_no_list_members(ctx, database, world):
    """The "Add to list" menu names the static lists; it counted every list's members on
    each page, so a list of 100,000 contacts slowed the index (bench/large.py after its
    list enrollment), through an index, which the plan test above lets pass."""
    from cadenza.services.crm import lists

    contact = world.contact("ann@corp.example", firstname="Ann")
    admin = create_user(ctx, "boss@example.com", role="admin", password="boss-secret")
    listed = lists.create_list(ctx, admin.id, "Prospects", "static").contact_list
    lists.change_members(ctx, admin.id, listed.id, add=[contact.id])
    ui = Ui(ctx, world).sign_in("boss@example.com", "boss-secret", "/contacts")
    sent: list[str] = []

    def grab(conn, cursor, statement, params, context, executemany):
        sent.append(statement)

    event.listen(database.engine, "before_cursor_execute", grab)
    try:
        page = ui.client.get("/contacts")
    finally:
        event.remove(database.engine, "before_cursor_execute", grab)
    assert page.status_code == 200 and "Prospects" in page.text  # the menu names it
    assert not [sql for sql in sent if "list_members" in sql], sent


def test_a_sequences_running_list_reads_its_own_state_range(ctx, database, installation):
    """A sequence's page lists its newest running enrollments through
    ix_enrollments_sequence_state_id (migration 0029), read backwards from the newest
    and stopping at a page. Without it the database walked every active enrollment of
    the installation (SQLite) or crossed them with the sequence's every enrollment and
    sorted them (PostgreSQL): the test above lets that pass (both sides are indexes).

    SQLite only: at a hundred rows PostgreSQL's costs rightly prefer any index of the
    sequence and a sort, whatever is priced out, so its plan here says nothing of a
    large table's; bench/large.py measures that one (docs/benchmarks.md)."""
    if database.dialect != "sqlite":
        pytest.skip("PostgreSQL plans a small table by its costs: measured at scale instead")
    ui, sequence_id = installation
    listed: list[tuple[str, object]] = []

    def grab(conn, cursor, statement, params, context, executemany):
        flat = " ".join(statement.split())
        if (
            flat.upper().startswith("SELECT")
            and "FROM enrollments" in flat
            and "ORDER BY enrollments.id DESC" in flat
            and "LIMIT" in flat
        ):
            listed.append((statement, params))

    event.listen(database.engine, "before_cursor_execute", grab)
    try:
        answer = ui.client.get(f"/sequences/{sequence_id}")
        assert answer.status_code == 200
    finally:
        event.remove(database.engine, "before_cursor_execute", grab)
    assert listed, "the page's running list was not found among its statements"
    with database.engine.connect() as connection:
        for sql, params in listed:
            explained = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)
            plan = " ".join(row[-1] for row in explained)
            assert "ix_enrollments_sequence_state_id" in plan, (sql, plan)
        connection.rollback()
