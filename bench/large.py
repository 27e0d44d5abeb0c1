"""Pages of a large installation against a small one, in one run (issue 15 §4).

    .venv/bin/python bench/large.py [--db sqlite|postgresql] [--scale 1.0]
        [--small-scale 0.01] [--repeat 20] [--import-rows 100000] [--list-members 100000]
        [--pages contacts,stats] [--keep | --reuse SMALL_URL LARGE_URL]

`--scale 1.0` is the issue's installation: 1,000,000 contacts with properties, 100,000
live enrollments, 10,000,000 step runs and their messages (every 10th opened, every
50th replied to, every 200th a meeting), 50 users with a mailbox each, 200 sequences
of five email steps. `--small-scale 0.01` is the same shape with 10,000 contacts (the
users, mailboxes and sequences stay 50 and 200). Both are written straight into the
tables in bulk (multi-row executemany on SQLite, COPY on PostgreSQL), not through the
services one by one: that is what makes ten million rows take minutes.

Each page (the contacts index: page 1, search, filter, sort, a deep page; the
enrollments and outbox pages, a sequence's page and analytics, the stats API) is
requested `--repeat` times as a signed-in admin (who sees everything: the widest
query), through the real app; the script prints p95 small, p95 large and the ratio,
against the goal of 2. Then a CSV import of `--import-rows` rows and a list enrollment
of `--list-members` members on the large installation print their rates and how much
the process's resident memory grew at its peak. No figure is asserted: they are printed.

`--pages` measures only the pages whose name holds one of its words; `--keep` leaves
both installations behind and prints their URLs, and `--reuse SMALL_URL LARGE_URL`
measures them again (migrated to the newest revision first) without the minutes of
building: for measuring a change to a query before and after on the same rows.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import statistics
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psutil
from common import scratch_database
from fastapi.testclient import TestClient

from cadenza.config import Settings
from cadenza.domain.clock import FrozenClock
from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.accounts.users import create_token, create_user
from cadenza.services.context import Context
from cadenza.services.counters import upkeep as counter_upkeep
from cadenza.services.sequences.catalog import create_sequence
from cadenza.web.app import create_app

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
USERS, SEQUENCES, STEPS = 50, 200, 5
ZONES = ["Europe/Paris", "America/New_York", "Asia/Tokyo", "Europe/London", "UTC", None]
COMPANIES = [f"{w} {k}" for w in ("Acme", "Globex", "Initech", "Umbrella", "Hooli")
             for k in ("Corp", "Labs", "GmbH", "Group")]  # fmt: skip
NAMES = ["Martin", "Bernard", "Dubois", "Smith", "Jones", "Garcia", "Rossi", "Tanaka",
         "Müller", "Novak", "Silva", "Kim", "Nguyen", "Olsen", "Haddad", "Cohen"]  # fmt: skip
STEP = {"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"}
CHUNK = 20_000
PASSWORD = "bench-password-1"  # a scratch database's only user


@dataclass(frozen=True)
class Shape:
    contacts: int
    live: int  # live (active) enrollments: three runs each, two sent and one scheduled
    runs: int  # step runs in all; finished enrollments have five, all sent

    @classmethod
    def at(cls, scale: float) -> Shape:
        return cls(int(1_000_000 * scale), int(100_000 * scale), int(10_000_000 * scale))

    @property
    def finished(self) -> int:
        return max(0, (self.runs - 3 * self.live) // STEPS)


class Writer:
    """Bulk rows into one table: executemany on SQLite, COPY on PostgreSQL."""

    def __init__(self, db) -> None:
        self.db = db
        self.postgres = db.dialect == "postgresql"

    def write(self, table: str, columns: list[str], rows) -> int:
        raw = self.db.engine.raw_connection()
        count = 0
        try:
            cursor = raw.cursor()
            batch: list[tuple] = []
            for row in rows:
                batch.append(row if self.postgres else tuple(map(_sqlite, row)))
                if len(batch) == CHUNK:
                    count += self._flush(cursor, table, columns, batch)
                    batch = []
            count += self._flush(cursor, table, columns, batch)
            raw.commit()
        finally:
            raw.close()
        return count

    def _flush(self, cursor, table: str, columns: list[str], batch: list[tuple]) -> int:
        if not batch:
            return 0
        names = ", ".join(f'"{c}"' for c in columns)
        if self.postgres:
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", batch)
        return len(batch)


def _sqlite(value):
    """What SQLAlchemy would store on SQLite: naive UTC text, 0/1, JSON text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


SNAPSHOT = json.dumps([{**STEP, "position": p} for p in range(1, STEPS + 1)])


@dataclass(frozen=True)
class Layout:
    """Who and what the rows point at, and how their times are spread: the same for
    either way of writing them."""

    shape: Shape
    reps: list[int]  # users: 49 reps, the admin last
    boxes: list[int]  # a mailbox each, in the same order
    sequences: list[int]

    @property
    def start(self) -> datetime:
        return NOW - timedelta(days=3 * 365)

    @property
    def tick(self) -> timedelta:  # between two contacts' creation
        return (NOW - self.start) / max(self.shape.contacts, 1)

    @property
    def total(self) -> int:  # enrollments: the finished ones first (older), then the live
        return self.shape.live + self.shape.finished

    @property
    def etick(self) -> timedelta:  # between two enrollments
        return (NOW - timedelta(days=1) - self.start) / max(self.total, 1)


def build(ctx: Context, shape: Shape, writer: Writer) -> dict:
    """The installation; returns what the requests need (an admin's password and token,
    a sequence id, a contact id deep in the index)."""
    admin = create_user(ctx, "boss@example.com", role="admin", password=PASSWORD)
    token = create_token(ctx, admin.id, "bench").token
    reps, boxes = [], []
    for i in range(USERS - 1):
        user = create_user(ctx, f"rep{i}@example.com", firstname=f"Rep{i}")
        reps.append(user.id)
        boxes.append(create_mailbox(ctx, user.id, f"rep{i}@example.com").id)
    boxes.append(create_mailbox(ctx, admin.id, "boss@example.com").id)
    reps.append(admin.id)
    sequences = [
        create_sequence(ctx, reps[i % len(reps)], f"Sequence {i}", steps=[STEP] * STEPS).id
        for i in range(SEQUENCES)
    ]
    started = time.perf_counter()
    layout = Layout(shape, reps, boxes, sequences)
    if writer.postgres:
        server_side(ctx.db, layout, started)
    else:
        from_python(writer, layout, started)
    # Rows written around the services have no counters: recounted from the rows, as
    # `cadenza db rebuild-counters` does (docs/analytics.md, *Counters*).
    written = counter_upkeep.rebuild(ctx)
    print(f"    {written:,} counter rows ({time.perf_counter() - started:.0f} s)", flush=True)
    # Committed (engine.begin): ANALYZE's statistics are written in the transaction, and
    # a connection closed without a commit rolled them back, leaving the planner what
    # autovacuum (PostgreSQL) or nothing at all (SQLite) had gathered by then.
    if writer.postgres:
        with ctx.db.engine.begin() as connection:
            for table in ("contacts", "enrollments", "step_runs", "messages", "email_events",
                          "sequence_counts"):  # fmt: skip
                connection.exec_driver_sql(f"ANALYZE {table}")
                connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 1) FROM {table}))"
                )
    else:
        with ctx.db.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)
    return {"token": token, "sequence": sequences[7], "deep_contact": min(shape.contacts, 7_500)}


# The same rows as from_python's, generated by PostgreSQL itself (issue 15 §4's ten
# million step runs: COPY from Python wrote about 8,000 rows a second into tables with
# their eleven indexes, 45 minutes for --scale 1.0). %(name)s are psycopg's parameters;
# run ids follow one series so the rows lie in the order from_python writes them.
ROWS = {
    "contacts": """
        INSERT INTO contacts (id, email, email_key, firstname, lastname, company, jobtitle,
            timezone, properties, owner_id, blocked, created_at, updated_at)
        SELECT i + 1, 'p' || i || '@c' || i %% 997 || '.example',
            'p' || i || '@c' || i %% 997 || '.example',
            (%(names)s::text[])[i %% 16 + 1], (%(names)s::text[])[i / 16 %% 16 + 1] || i %% 1000,
            (%(companies)s::text[])[i %% 20 + 1], 'Buyer', (%(zones)s::text[])[i %% 6 + 1],
            format('{"industry": "ind%%s", "score": %%s}', i %% 40, i %% 100)::json,
            (%(reps)s::int[])[i %% 50 + 1], false,
            %(start)s + interval '1 microsecond' * (i::bigint * %(tick)s),
            %(start)s + interval '1 microsecond' * (i::bigint * %(tick)s)
        FROM generate_series(0, %(contacts)s - 1) AS i""",
    "enrollments": """
        INSERT INTO enrollments (id, contact_id, sequence_id, mailbox_id, enrolled_by_id,
            timezone, state, start_step, steps_snapshot, settings_snapshot, token_values,
            bulk, needs_attention, enrolled_at, ended_at)
        SELECT e + 1, e %% %(contacts)s + 1, (%(sequences)s::int[])[e %% 200 + 1],
            (%(boxes)s::int[])[e %% 50 + 1], (%(reps)s::int[])[e %% 50 + 1], 'UTC',
            CASE WHEN e < %(finished)s THEN 'finished' ELSE 'active' END, 1,
            %(snapshot)s::json, '{}', '{}', false, false, at,
            CASE WHEN e < %(finished)s THEN at + interval '240 hours' END
        FROM generate_series(0, %(total)s - 1) AS e,
            LATERAL (SELECT %(start)s + interval '1 microsecond' * (e::bigint * %(etick)s)
                     AS at) AS t""",
    "step_runs": """
        INSERT INTO step_runs (id, enrollment_id, mailbox_id, step_position, step_type,
            bulk_first, send_ready, status, due_at, attempts, completed_at, created_at)
        SELECT r, e + 1, (%(boxes)s::int[])[e %% 50 + 1], p, 'email', false, false,
            CASE WHEN done THEN 'sent' ELSE 'pending' END,
            CASE WHEN done THEN at ELSE %(now)s + interval '48 hours' END,
            CASE WHEN done THEN 1 ELSE 0 END, CASE WHEN done THEN at END, at
        FROM runs""",
    "messages": """
        INSERT INTO messages (id, step_run_id, enrollment_id, mailbox_id, contact_id,
            message_id, from_email, to_email, subject, body_html, body_text, status,
            handed_at, sent_at, created_at)
        SELECT r, r, e + 1, (%(boxes)s::int[])[e %% 50 + 1], e %% %(contacts)s + 1,
            '<m' || r || '@bench>', 'rep@example.com',
            'p' || e %% %(contacts)s || '@example.com', 'Hi', '<p>Hello</p>', 'Hello', 'sent',
            at, at, at
        FROM runs WHERE done""",
    "email_events": """
        INSERT INTO email_events (kind, contact_id, enrollment_id, message_id, data,
            occurred_at)
        SELECT k.kind, e %% %(contacts)s + 1, e + 1, r, '{}', at + interval '1 hour'
        FROM runs, (VALUES (1, 'open', 10), (2, 'reply', 50), (3, 'meeting_booked', 200))
            AS k(o, kind, every)
        WHERE done AND r %% 10 = 0 AND r %% k.every = 0
        ORDER BY r, k.o""",
}
# Every step run: (run id, enrollment's index e from 0, step position p, when, sent?).
# Finished enrollments (the first `finished`) have five runs, all sent; live ones three,
# two sent and the third scheduled.
RUNS = """
    WITH runs AS (
        SELECT r, e, p, p <= sent AS done,
            %(start)s + interval '1 microsecond' * (e::bigint * %(etick)s)
                + interval '48 hours' * (p - 1) AS at
        FROM (
            SELECT r,
                (CASE WHEN r <= 5 * %(finished)s::bigint THEN (r - 1) / 5
                      ELSE %(finished)s + (r - 5 * %(finished)s::bigint - 1) / 3 END)::int AS e,
                CASE WHEN r <= 5 * %(finished)s::bigint THEN (r - 1) %% 5 + 1
                     ELSE (r - 5 * %(finished)s::bigint - 1) %% 3 + 1 END AS p,
                CASE WHEN r <= 5 * %(finished)s::bigint THEN 5 ELSE 2 END AS sent
            FROM generate_series(1, 5 * %(finished)s::bigint + 3 * %(live)s) AS r
        ) AS numbered
    )"""


def server_side(db, layout: Layout, started: float) -> None:
    """The rows from_python writes, generated by PostgreSQL (INSERT ... SELECT over
    generate_series), into tables stripped of their secondary indexes and constraints
    for the load (each row then costs its heap tuple and primary key only): they are
    created again afterwards from their own definitions, as the catalogue held them,
    each built in one pass over the table, and the foreign keys checked in one join
    each. Then VACUUM ANALYZE, as autovacuum would have left a long-lived installation
    (hint bits set, the visibility map for index-only scans, statistics), so that it
    does not run during the measurements instead."""
    shape = layout.shape
    params = {
        "names": NAMES, "companies": COMPANIES, "zones": ZONES, "reps": layout.reps,
        "boxes": layout.boxes, "sequences": layout.sequences, "snapshot": SNAPSHOT,
        "start": layout.start, "now": NOW, "tick": layout.tick // timedelta(microseconds=1),
        "etick": layout.etick // timedelta(microseconds=1), "contacts": shape.contacts,
        "finished": shape.finished, "live": shape.live, "total": layout.total,
    }  # fmt: skip
    assert len(layout.reps) == len(layout.boxes) == USERS and len(layout.sequences) == SEQUENCES
    assert len(ZONES) == 6 and len(NAMES) == 16 and len(COMPANIES) == 20
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")  # the index builds
        cursor.execute("SET LOCAL synchronous_commit = off")
        recreate = [ddl for table in ROWS for ddl in _strip(cursor, table)]
        for table, insert in ROWS.items():
            cursor.execute((RUNS if "FROM runs" in insert else "") + insert, params)
            print(f"    {cursor.rowcount:,} {table} ({time.perf_counter() - started:.0f} s)",
                  flush=True)  # fmt: skip
        # Indexes before constraints: a foreign key's check then finds its side's index.
        for ddl in sorted(recreate, key=lambda d: "FOREIGN KEY" in d):
            cursor.execute(ddl)
        raw.commit()
    finally:
        raw.close()
    print(f"    indexes and constraints ({time.perf_counter() - started:.0f} s)", flush=True)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in ROWS:
            connection.exec_driver_sql(f"VACUUM (ANALYZE) {table}")
        # The gigabytes just written go to disk now, not in a checkpoint spread over the
        # minutes of measurements that follow (superuser or pg_checkpoint; else skipped).
        with suppress(Exception):
            connection.exec_driver_sql("CHECKPOINT")
    print(f"    vacuumed ({time.perf_counter() - started:.0f} s)", flush=True)


def _strip(cursor, table: str) -> list[str]:
    """Drops the table's indexes, unique and foreign-key constraints but its primary key
    and its partial indexes (few rows in them: pending runs, live enrollments; and their
    conditions would come back written differently); returns the statements that create
    them again, as PostgreSQL describes them."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype IN ('u', 'f')",
        (table,),
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid"
        " WHERE x.indrelid = %s::regclass AND x.indpred IS NULL AND NOT EXISTS ("
        "   SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid"
        "   AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x'))",
        (table,),
    )
    indexes = cursor.fetchall()
    for name, _ in constraints:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    return [ddl for _, ddl in indexes] + [
        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {ddl}' for name, ddl in constraints
    ]


def from_python(writer: Writer, layout: Layout, started: float) -> None:
    """The rows, generated here and written in bulk (SQLite: executemany)."""
    shape, reps, boxes, sequences = layout.shape, layout.reps, layout.boxes, layout.sequences
    start, n, tick = layout.start, shape.contacts, layout.tick
    writer.write(
        "contacts",
        ["id", "email", "email_key", "firstname", "lastname", "company", "jobtitle",
         "timezone", "properties", "owner_id", "blocked", "created_at", "updated_at"],
        (
            (i + 1, f"p{i}@c{i % 997}.example", f"p{i}@c{i % 997}.example",
             NAMES[i % 16], NAMES[(i // 16) % 16] + str(i % 1000), COMPANIES[i % 20],
             "Buyer", ZONES[i % len(ZONES)],
             json.dumps({"industry": f"ind{i % 40}", "score": i % 100}),
             reps[i % len(reps)], False, start + tick * i, start + tick * i)
            for i in range(n)
        ),
    )  # fmt: skip
    print(f"    {n:,} contacts ({time.perf_counter() - started:.0f} s)", flush=True)
    finished, total, etick, snapshot = shape.finished, layout.total, layout.etick, SNAPSHOT

    def enrolled_at(e: int):  # finished ones first (older), the live ones last
        return start + etick * e

    def contact_of(e: int) -> int:
        return e % n + 1

    writer.write(
        "enrollments",
        ["id", "contact_id", "sequence_id", "mailbox_id", "enrolled_by_id", "timezone",
         "state", "start_step", "steps_snapshot", "settings_snapshot", "token_values",
         "bulk", "needs_attention", "enrolled_at", "ended_at"],
        (
            (e + 1, contact_of(e), sequences[e % SEQUENCES], boxes[e % len(boxes)],
             reps[e % len(reps)], "UTC", "finished" if e < finished else "active", 1,
             snapshot, "{}", "{}", False, False, enrolled_at(e),
             enrolled_at(e) + timedelta(days=10) if e < finished else None)
            for e in range(total)
        ),
    )  # fmt: skip
    print(f"    {total:,} enrollments ({time.perf_counter() - started:.0f} s)", flush=True)

    def runs():
        run_id = 0
        for e in range(total):
            sent = STEPS if e < finished else 2
            for p in range(1, (STEPS if e < finished else 3) + 1):
                run_id += 1
                at = enrolled_at(e) + timedelta(days=2 * (p - 1))
                done = p <= sent
                yield run_id, e, p, at, done

    writer.write(
        "step_runs",
        ["id", "enrollment_id", "mailbox_id", "step_position", "step_type", "bulk_first",
         "send_ready", "status", "due_at", "attempts", "completed_at", "created_at"],
        (
            (r, e + 1, boxes[e % len(boxes)], p, "email", False, False,
             "sent" if done else "pending", at if done else NOW + timedelta(days=2),
             1 if done else 0, at if done else None, at)
            for r, e, p, at, done in runs()
        ),
    )  # fmt: skip
    print(f"    {shape.runs:,} step runs ({time.perf_counter() - started:.0f} s)", flush=True)
    writer.write(
        "messages",
        ["id", "step_run_id", "enrollment_id", "mailbox_id", "contact_id", "message_id",
         "from_email", "to_email", "subject", "body_html", "body_text", "status",
         "handed_at", "sent_at", "created_at"],
        (
            (r, r, e + 1, boxes[e % len(boxes)], contact_of(e), f"<m{r}@bench>",
             "rep@example.com", f"p{contact_of(e) - 1}@example.com", "Hi", "<p>Hello</p>",
             "Hello", "sent", at, at, at)
            for r, e, _, at, done in runs()
            if done
        ),
    )  # fmt: skip
    print(f"    messages ({time.perf_counter() - started:.0f} s)", flush=True)

    def events():
        for r, e, _, at, done in runs():
            if not done:
                continue
            for every, kind in ((10, "open"), (50, "reply"), (200, "meeting_booked")):
                if r % every == 0:
                    yield kind, contact_of(e), e + 1, r, "{}", at + timedelta(hours=1)

    writer.write(
        "email_events",
        ["kind", "contact_id", "enrollment_id", "message_id", "data", "occurred_at"],
        events(),
    )
    print(f"    events ({time.perf_counter() - started:.0f} s)", flush=True)


def pages(info: dict) -> dict[str, str]:
    sequence = info["sequence"]
    return {
        "contacts index, page 1": "/contacts",
        "contacts index, search": "/contacts?q=globex",
        "contacts index, filter": "/contacts?timezone=Asia/Tokyo&status=reachable",
        "contacts index, sort": "/contacts?sort=created&desc=true",
        "contacts index, page 300": "/contacts?page=300",
        "contacts API, search": "/api/v1/contacts?q=globex",
        "contacts API, deep cursor": f"/api/v1/contacts?cursor={info['deep_contact']}",
        "enrollments page": "/enrollments",
        "enrollments API, active": "/api/v1/enrollments?state=active&order=newest",
        "outbox page": "/outbox",
        "messages API": "/api/v1/messages",
        "sequence page": f"/sequences/{sequence}",
        "sequence analytics API": f"/api/v1/sequences/{sequence}/analytics",
        "stats API": f"/api/v1/sequences/{sequence}/stats",
    }


def signed_in(ctx: Context, token: str) -> TestClient:
    client = TestClient(create_app(ctx))
    form = client.get("/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    answer = client.post(
        "/login",
        data={"email": "boss@example.com", "password": PASSWORD, "next": "/", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def p95(client: TestClient, path: str, repeat: int) -> tuple[float, float]:
    """(p95, median) of `repeat` requests after a warm-up."""
    client.get(path).raise_for_status()  # warm: the first request compiles and caches
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(path).raise_for_status()
        timings.append(time.perf_counter() - started)
    high = statistics.quantiles(timings, n=20)[-1] if len(timings) > 1 else timings[0]
    return high, statistics.median(timings)


class PeakRss:
    """The process's resident memory at its peak while the block runs, above where it
    started (psutil, sampled every 20 ms by a thread)."""

    def __enter__(self) -> PeakRss:
        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def grown_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def bulk_rates(ctx: Context, client: TestClient, rows: int, members: int) -> None:
    """A CSV import and a list enrollment on the large installation: rows per second and
    how much the process's resident memory grew at its peak."""
    from cadenza.services.crm import contact_import, lists
    from cadenza.services.enrollment import list_jobs

    text = io.StringIO()
    out = csv.writer(text)
    out.writerow(["email", "firstname", "lastname", "company", "industry"])
    for i in range(rows):
        out.writerow([f"new{i}@import.example", "Ann", f"Lee{i}", "Initech Labs", "retail"])
    data = text.getvalue().encode()
    admin_id = _admin_id(ctx)
    with PeakRss() as memory:
        started = time.perf_counter()
        report = contact_import.import_contacts(ctx, data)
        elapsed = time.perf_counter() - started
    print(f"CSV import: {rows:,} rows ({len(data) / 2**20:.1f} MB) in {elapsed:.1f} s = "
          f"{rows / elapsed:,.0f} rows/s, peak RSS +{memory.grown_mb:.0f} MB "
          f"({report.created:,} created, {len(report.errors)} errors)")  # fmt: skip
    contact_list = lists.create_list(ctx, admin_id, "Bench list", "static").contact_list
    _add_members(ctx, contact_list.id, members)  # the imported contacts: in no sequence yet
    sequence = create_sequence(ctx, admin_id, "Bench list sequence", steps=[STEP])
    with PeakRss() as memory:
        started = time.perf_counter()
        job = list_jobs.start(ctx, admin_id, contact_list.id, sequence.id)
        while list_jobs.run_due(ctx):
            pass
        elapsed = time.perf_counter() - started
    done = list_jobs.get_job(ctx, job.id)
    print(f"list enrollment: {done.processed:,} of {members:,} members in {elapsed:.1f} s = "
          f"{done.processed / elapsed:,.0f} members/s, peak RSS +{memory.grown_mb:.0f} MB "
          f"({done.enrolled:,} enrolled, refused: {done.refusals or 'none'})")  # fmt: skip


def _admin_id(ctx: Context) -> int:
    from sqlalchemy import select

    from cadenza.store.models import User

    with ctx.db.read() as session:
        return session.scalar(select(User.id).where(User.email == "boss@example.com"))


def _add_members(ctx: Context, list_id: int, members: int) -> None:
    """The newest contacts (the import's, else the installation's last ones)."""
    from sqlalchemy import insert, select

    from cadenza.store.models import Contact, ListMember

    with ctx.db.transaction() as session:
        ids = session.scalars(select(Contact.id).order_by(Contact.id.desc()).limit(members))
        session.execute(
            insert(ListMember),
            [{"list_id": list_id, "contact_id": i, "added_at": NOW} for i in ids],
        )


def rebuilt_info(ctx: Context, shape: Shape) -> dict:
    """What `build` returned, found again in an installation a `--keep` run left: a new
    token for its admin, its 8th sequence, the same deep contact."""
    from sqlalchemy import select

    from cadenza.store.models import Sequence

    token = create_token(ctx, _admin_id(ctx), "bench again").token
    with ctx.db.read() as session:
        sequence = session.scalar(select(Sequence.id).order_by(Sequence.id).offset(7).limit(1))
    return {"token": token, "sequence": sequence, "deep_contact": min(shape.contacts, 7_500)}


@contextmanager
def installation(args, label: str, shape: Shape, url: str | None):
    """A new installation (left behind with `--keep`), or the one at `url` (`--reuse`),
    migrated to the newest revision either way."""
    if url is None:
        with scratch_database(args.db, keep=args.keep) as db:
            ctx = _context(db)
            info = build(ctx, shape, Writer(db))
            if args.keep:
                print(f"  kept {label}: {db.url}", flush=True)
            yield ctx, info
        return
    from cadenza.store import migrate
    from cadenza.store.db import Database

    db = Database(url)
    try:
        migrate.upgrade(db)
        ctx = _context(db)
        yield ctx, rebuilt_info(ctx, shape)
    finally:
        db.dispose()


def _context(db) -> Context:
    settings = Settings(
        database_url=db.url, default_timezone="UTC", password_hash_cost=4,
        daily_enrollment_limit=10_000_000,  # the list enrollment is not held to a day's
    )  # fmt: skip
    return Context(db=db, clock=FrozenClock(NOW), settings=settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--small-scale", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--list-members", type=int, default=100_000)
    parser.add_argument(
        "--pages", default="",
        help="measure only the pages whose name holds one of these comma-separated words",
    )  # fmt: skip
    parser.add_argument(
        "--keep", action="store_true",
        help="leave both installations behind and print their URLs, for --reuse",
    )  # fmt: skip
    parser.add_argument(
        "--reuse", nargs=2, metavar=("SMALL_URL", "LARGE_URL"),
        help="measure the installations a --keep run left instead of building them "
        "(pass the same --db and scales; the CSV import and list enrollment would grow them)",
    )  # fmt: skip
    args = parser.parse_args()
    wanted = [w.strip() for w in args.pages.split(",") if w.strip()]
    results: dict[str, dict[str, tuple[float, float]]] = {}
    for index, (label, scale) in enumerate((("small", args.small_scale), ("large", args.scale))):
        shape = Shape.at(scale)
        print(f"{label}: {shape.contacts:,} contacts, {shape.live:,} live and "
              f"{shape.finished:,} finished enrollments, {shape.runs:,} step runs "
              f"({args.db})", flush=True)  # fmt: skip
        url = args.reuse[index] if args.reuse else None
        with installation(args, label, shape, url) as (ctx, info):
            client = signed_in(ctx, info["token"])
            results[label] = {
                name: p95(client, path, args.repeat)
                for name, path in pages(info).items()
                if not wanted or any(w in name for w in wanted)
            }
            if label == "large" and (args.import_rows or args.list_members):
                bulk_rates(ctx, client, args.import_rows, min(args.list_members, shape.contacts))
    print(f"\n{'page (p95 of ' + str(args.repeat) + ')':<30}{'small':>10}{'large':>10}"
          f"{'ratio':>8}  goal ≤ 2   (medians: small, large, ratio)")  # fmt: skip
    for name in results["small"]:
        (small, small_mid), (large, large_mid) = results["small"][name], results["large"][name]
        verdict = "ok" if large / small <= 2 else "OVER"
        print(f"{name:<30}{small * 1000:>8.1f}ms{large * 1000:>8.1f}ms"
              f"{large / small:>8.2f}  {verdict:<6}   {small_mid * 1000:.1f}ms, "
              f"{large_mid * 1000:.1f}ms, {large_mid / small_mid:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
