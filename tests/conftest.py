"""Fixtures shared by every test: databases on both backends, a frozen clock, a services context.

PostgreSQL tests run against a throw-away database created for this run — one per
xdist worker, each worker being its own session — so two runs or two workers never
collide, on the server at CADENZA_TEST_PG (default 127.0.0.1:5432, database `test`).
If that server is unreachable the PostgreSQL tests FAIL with instructions: they are
never silently skipped. docs/testing.md describes the fixtures and what each costs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from cadenza.config import Settings, get_settings
from cadenza.domain.clock import FrozenClock
from cadenza.services.context import Context
from cadenza.store import migrate
from cadenza.store.db import Database
from cadenza.store.models import Base
from tests.support import route_memo

route_memo.install()

PG_ADMIN_DSN = os.environ.get("CADENZA_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PG_START_HINT = (
    "PostgreSQL is not reachable at {dsn} ({error}). Start it with:\n"
    "  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"
    "or point CADENZA_TEST_PG at a server with trust auth and a database you may create in."
)
BACKENDS = ["sqlite", "postgresql"]
# An id no row has: the largest the id columns hold, which no test run reaches. (PostgreSQL
# ids keep counting up across tests, so a small "missing" id may well exist.)
MISSING_ID = 2**31 - 1
# Where the frozen clocks start: tests that care about weekdays move it explicitly.
MONDAY_9AM = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@contextlib.contextmanager
def throwaway_pg_database(label: str) -> Iterator[str]:
    """A migrated PostgreSQL database of this process's own, dropped afterwards: its URL."""
    name = f"cadenza_{label}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(PG_START_HINT.format(dsn=PG_ADMIN_DSN, error=exc), pytrace=False)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        # A commit returns without waiting for its WAL to reach the disk: only a crash of
        # the PostgreSQL server itself could lose the last commits, which no test does,
        # and each commit no longer waits on the shared disk (5-10 ms a commit under load).
        # Locks, isolation and constraints are PostgreSQL's own, as in production.
        admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    base, _, _ = PG_ADMIN_DSN.rpartition("/")
    url = f"{base}/{name}"
    try:
        db = Database(url)
        migrate.upgrade(db)
        db.dispose()
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """`get_settings()` is cached for the process (one installation per process), and an
    in-process CLI call fills that cache from the test's environment (its database, its
    key file). Cleared after every test, so no later test reads another test's settings."""
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    with throwaway_pg_database("test") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file, copied per test: migrating once keeps the suite fast."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db)
    db.dispose()  # the last connection closing folds the WAL back into the file
    return path


# Rows the migrations seed (the built-in object types) survive between tests.
SEEDED = {"object_types"}


def _empty_postgres(db: Database) -> None:
    """DELETE, child tables first, in one round trip: on tables this small it costs a few
    milliseconds, where TRUNCATE of every table (new files for each) took 0.2-1.4 s a test.
    Ids are not reset, so they keep counting up across tests: no test may assume an id."""
    statements = [
        f'DELETE FROM "{table.name}"'
        for table in reversed(Base.metadata.sorted_tables)
        if table.name not in SEEDED
    ]
    statements.append("DELETE FROM object_types WHERE NOT builtin")
    with db.engine.begin() as connection:
        connection.exec_driver_sql("; ".join(statements))


@pytest.fixture(params=BACKENDS)
def database(request, tmp_path) -> Iterator[Database]:
    """A migrated, empty database on each backend in turn."""
    if request.param == "sqlite":
        path = tmp_path / "cadenza.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        db = Database(f"sqlite:///{path}")
    else:
        db = Database(request.getfixturevalue("pg_database_url"))
        _empty_postgres(db)
    yield db
    db.dispose()


def backend_independent(test):
    """Runs a test of input validation on SQLite only, marked `backend_independent`.

    For tests whose bad input is refused before any query (the request model, the
    service's checks): both backends see the same refusal, so a second run on PostgreSQL
    proves nothing more. Every such test asserts the refusal itself (a 4xx, an error
    code), so a check that went missing still fails on SQLite, where the bad value would
    be stored or answered. Refusals that come from the database (constraints, lookups)
    keep running on both."""
    test = pytest.mark.backend_independent(test)
    return pytest.mark.parametrize("database", ["sqlite"], indirect=True)(test)


def pytest_collection_modifyitems(config, items):
    """Leaves out the PostgreSQL variant of a `backend_independent` item whose backend
    comes from a module-scoped fixture (`module_ctx`), which `backend_independent` cannot
    narrow without building that fixture again for every item."""
    kept, left_out = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        on_postgres = params.get("module_ctx") == "postgresql"
        if on_postgres and item.get_closest_marker("backend_independent"):
            left_out.append(item)
        else:
            kept.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(MONDAY_9AM)


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """Built once: Settings() reads the environment for each of its ~80 fields (tens of
    milliseconds), and no test's own settings depend on the environment it runs in."""
    # A cheap password hash (the knob exists for tests only).
    return Settings(database_url="sqlite://", default_timezone="UTC", password_hash_cost=4)


@pytest.fixture
def settings(base_settings, tmp_path) -> Settings:
    """The base settings with a key file of this test's own."""
    return base_settings.model_copy(update={"key_file": str(tmp_path / "cadenza.key")})


@pytest.fixture
def ctx(database: Database, clock: FrozenClock, settings: Settings) -> Context:
    return Context(db=database, clock=clock, settings=settings)


@pytest.fixture(scope="module", params=BACKENDS)
def module_ctx(request, tmp_path_factory) -> Iterator[Context]:
    """A context over a database of the module's own on each backend, for fixtures that
    build once what many test items share (the fuzzed app, the authorization matrix's
    team): on PostgreSQL a database of its own, so the per-test emptying of the shared
    one never reaches it, whatever tests a worker runs in between."""
    folder = tmp_path_factory.mktemp("module")
    settings = Settings(
        database_url="sqlite://",
        default_timezone="UTC",
        password_hash_cost=4,
        key_file=str(folder / "cadenza.key"),
    )
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            path = folder / "cadenza.db"
            shutil.copy(request.getfixturevalue("sqlite_template"), path)
            url = f"sqlite:///{path}"
        else:
            url = stack.enter_context(throwaway_pg_database("module"))
        db = Database(url)
        stack.callback(db.dispose)
        yield Context(db=db, clock=FrozenClock(MONDAY_9AM), settings=settings)


# --- a small world most service tests start from -------------------------------------

EMAIL_STEPS = [
    {"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"},
    {"type": "email", "delay_days": 3, "thread_with_step": 1, "body": "<p>Bump</p>"},
    {
        "type": "task",
        "delay_days": 3,
        "task_type": "call",
        "task_title": "Call {{ contact.firstname }}",
    },
]


class World:
    """Builders for the records a test needs, all written through the services."""

    def __init__(self, ctx: Context) -> None:
        from cadenza.services.accounts import mailboxes, users
        from cadenza.services.crm import contacts
        from cadenza.services.sequences import catalog as sequences

        self.ctx = ctx
        self._mailboxes = mailboxes
        self._contacts = contacts
        self._sequences = sequences
        self._users = users
        self.user = users.create_user(
            ctx, "rep@example.com", firstname="Riley", timezone="America/New_York"
        )
        self.mailbox = mailboxes.create_mailbox(
            ctx, self.user.id, "rep@example.com", from_name="Riley"
        )
        self.sequence = self.make_sequence()

    def make_sequence(self, steps=None, settings=None, name="Follow-up"):
        return self._sequences.create_sequence(
            self.ctx,
            self.user.id,
            name,
            settings=settings or {"follow_up_days": "weekdays"},
            steps=EMAIL_STEPS if steps is None else steps,
        )

    def contact(self, email="ann@corp.example", **fields):
        fields.setdefault("firstname", "Ann")
        return self._contacts.create_contact(self.ctx, {"email": email, **fields})

    def contacts(self, count: int, prefix: str = "c"):
        return [self.contact(f"{prefix}{i}@corp.example") for i in range(count)]

    def send_over_smtp(self, host, port, *, steps, name, settings=None, **mailbox_fields):
        """The user's only mailbox becomes an SMTP one at host:port (no TLS), and the
        world's sequence the given steps: what the tests against a real server share."""
        from cadenza.store.models import Mailbox

        mailbox = self._mailboxes.create_mailbox(
            self.ctx, self.user.id, mailbox_fields.pop("address", "rep@corp.example"),
            transport="smtp", smtp_host=host, smtp_port=port, smtp_security="none",
            **mailbox_fields,
        )  # fmt: skip
        with self.ctx.db.transaction() as session:
            session.delete(session.get(Mailbox, self.mailbox.id))
        self.mailbox = mailbox
        self.sequence = self.make_sequence(steps=steps, settings=settings, name=name)
        return self


@pytest.fixture
def world(ctx: Context) -> World:
    return World(ctx)


@pytest.fixture
def smtp_box(world):
    """The world's rep sends from an SMTP mailbox that reads no inbox (nothing listens
    on its port: for what is decided before a send), instead of the capture one."""
    world.send_over_smtp("127.0.0.1", 2525, steps=EMAIL_STEPS, name="Follow-up, SMTP")
    return world.mailbox


@pytest.fixture
def oauth_server():
    """The OAuth 2.0 authorization server on loopback (tests/support/oauth_server.py),
    consenting as the world's rep."""
    from tests.support.oauth_server import OAuthServer

    with OAuthServer(login_as="rep@example.com") as server:
        yield server


@pytest.fixture
def oauth_sink(oauth_server):
    """An SMTP sink that takes AUTH XOAUTH2 with a token the server says is live."""
    from tests.support.smtp_sink import SmtpSink

    with SmtpSink(oauth=oauth_server.is_live) as server:
        yield server


@pytest.fixture
def worker(ctx):
    from cadenza.engine.worker import Worker, WorkerOptions

    engine = Worker(ctx, WorkerOptions(batch_size=100), worker_id="test-worker")
    yield engine
    engine.close()


def enroll_ids(world, contacts, sequence=None, **options):
    """Enrolls contacts through the service and returns the enrollment ids (all must succeed)."""
    from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll

    results = enroll(
        world.ctx,
        EnrollRequest(
            sequence_id=(sequence or world.sequence).id,
            user_id=world.user.id,
            contacts=[ContactRequest(c.id) for c in contacts],
            **options,
        ),
    )
    assert all(r.ok for r in results), results
    return [r.enrollment_id for r in results]


class Api:
    """A TestClient over the app, with a token per role: admin, member, viewer, other."""

    def __init__(self, ctx: Context, world: World) -> None:
        from fastapi.testclient import TestClient

        from cadenza.services.accounts.mailboxes import create_mailbox
        from cadenza.services.accounts.users import create_token, create_user
        from cadenza.web.app import create_app

        self.ctx = ctx
        self.world = world
        self.client = TestClient(create_app(ctx), raise_server_exceptions=False)
        admin = create_user(ctx, "admin@example.com", role="admin", timezone="UTC")
        viewer = create_user(ctx, "viewer@example.com", role="viewer")
        other = create_user(ctx, "other@example.com", firstname="Olive")
        self.other_mailbox = create_mailbox(ctx, other.id, "other@example.com")
        self.users = {"member": world.user, "admin": admin, "viewer": viewer, "other": other}
        self.tokens = {
            role: create_token(ctx, u.id, "test").token for role, u in self.users.items()
        }

    def headers(self, role: str = "member") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def request(self, method: str, path: str, *, role: str | None = "member", **kwargs):
        headers = self.headers(role) if role else {}
        return self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def put(self, path, **kwargs):
        return self.request("PUT", path, **kwargs)

    def patch(self, path, **kwargs):
        return self.request("PATCH", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)


def assert_error(response, status: int, code: str):
    """The error format every failure follows: {"error": {"code", "message", "details"}}."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]


@pytest.fixture
def api(ctx: Context, world: World) -> Api:
    return Api(ctx, world)


def crash_while_handing_over(ctx: Context, worker) -> None:
    """A worker dies just after committing the hand-over of the one due email; once its
    lease expires, `worker` recovers the claim: the send's outcome is now unknown."""
    from datetime import timedelta

    from cadenza.services.delivery import claims
    from cadenza.services.delivery import handover as delivery

    [mailbox_id] = claims.mailboxes_with_due_email(ctx)
    [claim] = claims.claim_emails(
        ctx, mailbox_id, "dead", batch_size=10, horizon=timedelta(0), lease=timedelta(minutes=1)
    )
    delivery.hand_over(ctx, claim, "dead")
    ctx.clock.advance(timedelta(minutes=2))
    worker.tick()


# --- helpers several test modules share (import them from here, not from a test module) --


def code_of(call, *args, **kwargs) -> str:
    """The error code a service call fails with (it must fail)."""
    from cadenza.domain.errors import CadenzaError

    with pytest.raises(CadenzaError) as caught:
        call(*args, **kwargs)
    return str(caught.value.code)


def spaced_ok(times, limit, window=timedelta(seconds=60)) -> bool:
    """At most `limit` sends in any half-open 60-second window."""
    return all(sum(1 for t in times if start <= t < start + window) <= limit for start in times)


def enroll_over_api(api, world, contacts, role="member", sequence_id=None, **options):
    """POST /sequences/{id}/enrollments for contacts (rows or ready-made request items)."""
    body = {"contacts": [c if isinstance(c, dict) else {"contact_id": c.id} for c in contacts]}
    return api.post(
        f"/sequences/{sequence_id or world.sequence.id}/enrollments",
        role=role,
        json={**body, **options},
    )


def enroll_as(api, role, contacts, steps):
    """Enrolls through the service as `role` ("member" or "other"), from their own mailbox."""
    from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll

    world = api.world
    sequence = world.make_sequence(steps=steps, name=f"{role} {len(contacts)} {steps[0]['type']}")
    mailbox = api.other_mailbox if role == "other" else world.mailbox
    results = enroll(
        api.ctx,
        EnrollRequest(
            sequence_id=sequence.id,
            user_id=api.users[role].id,
            contacts=[ContactRequest(c.id) for c in contacts],
            mailbox_id=mailbox.id,
        ),
    )
    assert all(r.ok for r in results), results
    return [r.enrollment_id for r in results]


def run_worker(api, worker, hours=1) -> None:
    """The worker, on the frozen clock, through the next `hours`."""
    worker.run_until(api.ctx.clock.now() + timedelta(hours=hours))


def widen_cli_consoles(monkeypatch) -> None:
    """CLI output as wide as the tests read it: the consoles may have fixed their width
    when imported (from COLUMNS as it was then, as under pytest-xdist), so set it here."""
    from cadenza.cli import common

    monkeypatch.setenv("COLUMNS", "200")
    for console in (common.console, common.err_console):
        monkeypatch.setattr(console, "_width", 200)
