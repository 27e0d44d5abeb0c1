"""Web-app test helpers.

Over HTTP without a browser: `Ui`, a TestClient over the app with the CSRF handling a
form post needs, and the `ui` (signed out) and `rep` (signed in) fixtures.

In a browser: real Chromium (Debian's /usr/bin/chromium, headless, driven by Playwright)
against a live `cadenza serve` on a free port (one per session), over the demo data
restored for each test.

The server runs without its worker: a test runs the engine itself, in this process,
on the same database with a FrozenClock, so "tomorrow at 09:00" arrives on demand.
Every page a test visits is screenshotted, and any console error or uncaught page
error fails the test. Screenshots go to build/screenshots/ (ignored by git), or to the
folder CADENZA_SCREENSHOTS names: `make screenshots` refreshes docs/screenshots/, the
README's pictures, that way, so an ordinary test run leaves the tree clean.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, sync_playwright
from sqlalchemy import select

from cadenza.domain.secrets import hash_password
from cadenza.services.accounts.users import create_user
from cadenza.services.context import Context
from cadenza.store.db import Database
from cadenza.store.models import (
    Association,
    Contact,
    ContactList,
    ListMember,
    Mailbox,
    Record,
    Sequence,
    User,
)
from cadenza.web.app import create_app
from tests.e2e.conftest import LiveServer, free_port, start_serve

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("CADENZA_SCREENSHOTS") or ROOT / "build" / "screenshots")
DEMO_EMAIL, DEMO_PASSWORD = "rep@example.com", "cadenza-demo"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    """The CSRF token a page's forms carry (every signed-in page has one)."""
    found = CSRF.search(html)
    assert found, "no csrf_token on the page"
    return found.group(1)


class Ui:
    """The web app over HTTP without a browser; `token` is the signed-in session's CSRF
    token once `sign_in` (or a fixture) set it."""

    def __init__(self, ctx, world=None) -> None:
        self.ctx = ctx
        self.world = world
        self.client = TestClient(create_app(ctx), raise_server_exceptions=False)
        self.token: str | None = None

    def csrf(self, path: str = "/login") -> str:
        return csrf_token(self.client.get(path).text)

    def login(self, email: str, password: str, next_path: str = "/"):
        return self.client.post(
            "/login",
            data={"email": email, "password": password, "next": next_path,
                  "csrf_token": self.csrf()},
            follow_redirects=False,
        )  # fmt: skip

    def sign_in(self, email: str, password: str, page: str = "/tasks") -> Ui:
        """Signs in (it must succeed) and keeps the CSRF token of `page` in `token`."""
        answer = self.login(email, password)
        assert answer.status_code == 303, answer.text
        self.token = self.csrf(page)
        return self


def set_password(ctx, user_id: int, password: str) -> None:
    """Gives an existing user (the world's rep) a password to sign in with."""
    with ctx.db.transaction() as session:
        # at the context's cost (the cheap one in tests), as create_user hashes
        session.get(User, user_id).password_hash = hash_password(
            password, ctx.settings.password_hash_cost
        )


@pytest.fixture
def ui(ctx, world):
    """Signed out; can sign in as pw@example.com/secret (a member in Rome),
    viewer@example.com/secret, or the world's rep, rep@example.com/pw."""
    create_user(ctx, "pw@example.com", password="secret", timezone="Europe/Rome")
    create_user(ctx, "viewer@example.com", password="secret", role="viewer")
    set_password(ctx, world.user.id, "pw")  # the world's rep, who has a mailbox, signs in too
    return Ui(ctx, world)


@pytest.fixture
def rep(ctx, world):
    """The world's rep signed in over HTTP (no browser), with the page's CSRF token."""
    set_password(ctx, world.user.id, "pw")
    return Ui(ctx, world).sign_in("rep@example.com", "pw", "/tasks")


class DemoData:
    """Finds the demo data's rows by what they are (a name, a state), never by a remembered
    id: ids are the database's business, and a test that names "contact 12" says nothing
    of why it picked it."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    def _one(self, query):
        with self.ctx.db.read() as session:
            found = session.scalars(query.limit(1)).first()
        assert found is not None, str(query)
        return found

    @property
    def user_id(self) -> int:
        return self._one(select(User.id).where(User.email == DEMO_EMAIL))

    @property
    def mailbox_id(self) -> int:
        return self._one(select(Mailbox.id).where(Mailbox.from_email == DEMO_EMAIL))

    def sequence_id(self, name: str) -> int:
        return self._one(select(Sequence.id).where(Sequence.name == name))

    def list_id(self, name: str) -> int:
        return self._one(select(ContactList.id).where(ContactList.name == name))

    def contact_id(self, *conditions) -> int:
        """The first contact (in id order) meeting every condition, e.g.
        `Contact.lastname == "Usman", Contact.unsubscribed_at.is_not(None)`."""
        return self._one(select(Contact.id).where(*conditions).order_by(Contact.id))

    def reachable(self):
        """Conditions of a contact the engine may write to."""
        return (
            Contact.email.is_not(None),
            Contact.unsubscribed_at.is_(None),
            Contact.bounced_at.is_(None),
        )

    def company_contacts(self, company: str) -> tuple[int, int]:
        """The primary and the other contact of a demo company."""
        with self.ctx.db.read() as session:
            rows = session.execute(
                select(Association.contact_id, Association.is_primary)
                .join(Record, Record.id == Association.record_id)
                .where(Record.name == company)
                .order_by(Association.is_primary.desc())
            ).all()
        [(primary, is_primary), (other, _)] = rows
        assert is_primary, rows
        return primary, other

    def list_members(self, name: str, *conditions) -> list[int]:
        with self.ctx.db.read() as session:
            return list(
                session.scalars(
                    select(ListMember.contact_id)
                    .join(Contact, Contact.id == ListMember.contact_id)
                    .where(ListMember.list_id == self.list_id(name), *conditions)
                    .order_by(ListMember.contact_id)
                )
            )


@pytest.fixture
def demo(server_ctx) -> DemoData:
    return DemoData(server_ctx)


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium", pytrace=False)
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium refuses its own sandbox.
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def demo_template(sqlite_template, tmp_path_factory) -> Path:
    """The migrated template with the demo data loaded by `cadenza demo`, once per session
    (per xdist worker): loading it takes seconds, copying the file milliseconds."""
    path = tmp_path_factory.mktemp("demo-template") / "demo.db"
    shutil.copy(sqlite_template, path)
    env = {**os.environ, "CADENZA_DATABASE_URL": f"sqlite:///{path}"}
    subprocess.run(
        [sys.executable, "-m", "cadenza", "demo"], env=env, check=True, capture_output=True
    )  # the process's last connection closing folds the WAL back into the file
    return path


@pytest.fixture(scope="session")
def demo_server_process(demo_template, tmp_path_factory):
    """`cadenza serve --no-worker` over a copy of the demo database, once per session (per
    xdist worker): starting it costs seconds (Python, the app's imports, its first
    requests), and each browser test needs the same server over fresh data, which
    `demo_server` gives it by rewriting the database under the running server."""
    folder = tmp_path_factory.mktemp("ui-server")
    database = folder / "ui.db"
    shutil.copy(demo_template, database)
    database_url = f"sqlite:///{database}"
    env = {**os.environ, "CADENZA_DATABASE_URL": database_url}
    port = free_port()
    process = start_serve(env, port, "--no-worker", log=folder / "serve.log")
    yield LiveServer(f"http://127.0.0.1:{port}", database_url, process)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


@pytest.fixture
def demo_server(demo_server_process, demo_template):
    """The session's server, its database rewritten to the demo data as loaded: SQLite's
    backup API copies every page of the template into the live file under the server's
    open connections, and each of them sees the new content at its next transaction
    (SQLite checks the file's change counter), so a test starts where a fresh copy
    would, ids and all. The server keeps nothing of a test in memory but caches of pure
    computations (rendered templates, parsed schedules)."""
    assert demo_server_process.process.poll() is None, "the session's cadenza serve stopped"
    live = demo_server_process.database_url.removeprefix("sqlite:///")
    with (
        closing(sqlite3.connect(demo_template)) as source,
        closing(sqlite3.connect(live, timeout=60)) as target,
    ):
        source.backup(target)
    return demo_server_process


@pytest.fixture
def server_ctx(demo_server):
    """Services on the live server's database, for setting up and checking what the UI did."""
    db = Database(demo_server.database_url)
    yield Context(db=db)
    db.dispose()


class Browser:
    """One signed-in tab; `visit`/`shot` screenshot every page, console errors are kept."""

    def __init__(self, page: Page, base_url: str, prefix: str) -> None:
        self.page = page
        self.base_url = base_url
        self.prefix = prefix
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def url(self, path: str) -> str:
        return self.base_url + path

    def visit(self, path: str, name: str | None = None) -> Page:
        self.page.goto(self.url(path))
        if name:
            self.shot(name)
        return self.page

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^a-z0-9-]+", "-", f"{self.prefix}-{name}".lower()).strip("-")
        self.page.screenshot(path=str(SCREENSHOTS / f"{slug}.png"), full_page=True)

    def login(self, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD, path="/contacts"):
        self.page.goto(self.url(path))
        assert "/login" in self.page.url
        self.page.fill("#email", email)
        self.page.fill("#password", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(self.url(path))


@pytest.fixture
def tab(browser, demo_server, request):
    """A fresh browser context (own cookies) at laptop width."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    prefix = request.node.name.removeprefix("test_")
    tab = Browser(page, demo_server.url, prefix)
    yield tab
    context.close()
    assert tab.errors == [], f"console errors: {tab.errors}"


def enroll_form(token, world, contacts, **fields):
    """The enroll dialog's form for the world's sequence, as the page posts it."""
    return {
        "csrf_token": token,
        "sequence": str(world.sequence.id),
        "contact": [str(c.id) for c in contacts],
        "start_step": "1",
        "send": "now",
        "follow_up_days": "weekdays",
        "thread_follow_ups": "on",
        **fields,
    }
