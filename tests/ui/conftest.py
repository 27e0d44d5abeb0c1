"""Real Chromium (Debian's /usr/bin/chromium, headless, driven by Playwright) against a
live `cadenza serve` on a free port, over a fresh SQLite database with the demo data.

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
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from cadenza.services.context import Context
from cadenza.store.db import Database
from tests.e2e.conftest import LiveServer, free_port, wait_until_ready

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("CADENZA_SCREENSHOTS") or ROOT / "build" / "screenshots")
DEMO_EMAIL, DEMO_PASSWORD = "rep@example.com", "cadenza-demo"


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


@pytest.fixture
def demo_server(sqlite_template, tmp_path):
    """`cadenza serve --no-worker` over a copy of the migrated template with the demo data."""
    database = tmp_path / "ui.db"
    shutil.copy(sqlite_template, database)
    database_url = f"sqlite:///{database}"
    env = {**os.environ, "CADENZA_DATABASE_URL": database_url}
    subprocess.run(
        [sys.executable, "-m", "cadenza", "demo"], env=env, check=True, capture_output=True
    )
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cadenza", "serve", "--port", str(port), "--no-worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(url, process)
    yield LiveServer(url, database_url, process)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)


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


@pytest.fixture
def rep(ctx, world):
    """The world's rep signed in over HTTP (no browser), with the page's CSRF token."""
    from cadenza.domain.secrets import hash_password
    from cadenza.store.models import User
    from tests.ui.test_ui_http import Ui

    with ctx.db.transaction() as session:
        session.get(User, world.user.id).password_hash = hash_password("pw")
    ui = Ui(ctx, world)
    assert ui.login("rep@example.com", "pw").status_code == 303
    ui.token = ui.csrf("/tasks")
    return ui
