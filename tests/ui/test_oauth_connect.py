"""In Chromium: a rep clicks "Connect Google" on the settings page, the local authorization
server consents and sends the browser back, and the mailbox is connected; it then sends
over SMTP XOAUTH2 (a sink that checks the token with that server) and its reply is read
over IMAP XOAUTH2 (dovecot's oauth2 passdb, introspecting the token)."""

from __future__ import annotations

import os
import shutil
import signal
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from cadenza.config import Settings
from cadenza.domain.clock import FrozenClock
from cadenza.domain.enums import EnrollmentState, MailboxAuth, UnenrollReason
from cadenza.engine.inbox import poll_mailbox
from cadenza.engine.worker import Worker, WorkerOptions
from cadenza.services.accounts.mailboxes import get_mailbox
from cadenza.services.context import Context
from cadenza.services.crm.contacts import create_contact
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.services.sequences.catalog import create_sequence
from cadenza.store.db import Database
from cadenza.store.models import Enrollment, Mailbox, Message
from tests.e2e.conftest import LiveServer, free_port, start_serve
from tests.support.dovecot import Dovecot
from tests.support.inbound_mail import inbound_mail
from tests.support.oauth_server import OAuthServer
from tests.support.smtp_sink import SmtpSink
from tests.ui.conftest import DEMO_EMAIL, Browser

SCOPES = "openid email https://mail.google.com/"


@pytest.fixture
def oauth_server():
    with OAuthServer(login_as=DEMO_EMAIL) as server:
        yield server


@pytest.fixture
def sink(oauth_server):
    with SmtpSink(oauth=oauth_server.is_live) as server:
        yield server


@pytest.fixture
def dovecot(oauth_server):
    client_id, secret = oauth_server.register_client("http://127.0.0.1/unused", "")
    url = oauth_server.introspection_url(client_id, secret)
    with Dovecot(DEMO_EMAIL, oauth2_introspection_url=url) as server:
        yield server


@pytest.fixture
def live(demo_template, tmp_path, oauth_server, sink, dovecot):
    """`cadenza serve --no-worker` on the demo data, its Google preset pointed at the
    local servers, as an admin would set it in the environment."""
    database = tmp_path / "oauth-ui.db"
    shutil.copy(demo_template, database)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    client_id, secret = oauth_server.register_client(f"{url}/oauth/callback", SCOPES)
    env = {
        **os.environ,
        "CADENZA_DATABASE_URL": f"sqlite:///{database}",
        "CADENZA_PUBLIC_URL": url,
        "CADENZA_OAUTH_GOOGLE_CLIENT_ID": client_id,
        "CADENZA_OAUTH_GOOGLE_CLIENT_SECRET": secret,
        "CADENZA_OAUTH_GOOGLE_SMTP_HOST": sink.host,
        "CADENZA_OAUTH_GOOGLE_SMTP_PORT": str(sink.port),
        "CADENZA_OAUTH_GOOGLE_SMTP_SECURITY": "none",
        "CADENZA_OAUTH_GOOGLE_IMAP_HOST": dovecot.host,
        "CADENZA_OAUTH_GOOGLE_IMAP_PORT": str(dovecot.port),
        "CADENZA_OAUTH_GOOGLE_IMAP_SECURITY": "none",
        **{f"CADENZA_OAUTH_GOOGLE_{k.upper()}": v for k, v in oauth_server.endpoints().items()},
    }
    process = start_serve(env, port, "--no-worker")
    yield LiveServer(url, env["CADENZA_DATABASE_URL"], process)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)


@pytest.fixture
def tab(browser, live, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    tab = Browser(page, live.url, request.node.name.removeprefix("test_"))
    yield tab
    context.close()
    assert tab.errors == [], f"console errors: {tab.errors}"


@pytest.fixture
def live_ctx(live):
    db = Database(live.database_url)
    yield Context(db=db, settings=Settings(database_url=live.database_url))
    db.dispose()


def test_connect_google_from_settings_then_send_and_detect_the_reply(
    tab, live, live_ctx, sink, dovecot
):
    page = tab.page
    tab.login(path="/settings")
    tab.shot("settings-connect-buttons")
    page.click("a[data-oauth=google]")  # off to the provider, which consents and returns
    page.wait_for_url(f"{live.url}/oauth/callback?*")
    notice = page.locator("[id$=-notice]").first
    assert notice.inner_text().startswith(f"Connected {DEMO_EMAIL}")
    tab.shot("settings-connected")

    ctx = live_ctx
    with ctx.db.read() as session:
        mailbox_id = session.scalar(select(Mailbox.id).where(Mailbox.from_email == DEMO_EMAIL))
        owner_id = session.get_one(Mailbox, mailbox_id).owner_id
    mailbox = get_mailbox(ctx, mailbox_id)
    assert mailbox.auth_method == MailboxAuth.OAUTH2 and mailbox.connected

    # One email to a new contact from the connected mailbox, sent by a worker here.
    contact = create_contact(ctx, {"email": "oauth-reply@corp.example", "firstname": "Olga"})
    steps = [
        {"type": "email", "subject": "Hello Olga", "body": "<p>Hi</p>"},
        {"type": "email", "delay_days": 3, "thread_with_step": 1, "body": "<p>Bump</p>"},
    ]
    sequence = create_sequence(ctx, owner_id, "OAuth check", steps=steps)
    [result] = enroll(
        ctx,
        EnrollRequest(
            sequence_id=sequence.id,
            user_id=owner_id,
            contacts=[ContactRequest(contact.id)],
            mailbox_id=mailbox_id,
        ),
    )
    assert result.ok, result
    ctx.clock = FrozenClock(datetime.now(UTC))
    worker = Worker(ctx, WorkerOptions(batch_size=50), worker_id="oauth-ui")
    try:
        for _ in range(40):  # the demo's own due emails may go first, a minute's worth each
            worker.tick()
            if any(m.rcpt_tos == (contact.email,) for m in sink.messages):
                break
            ctx.clock.advance(timedelta(minutes=1))
    finally:
        worker.close()
    assert any(m.rcpt_tos == (contact.email,) for m in sink.messages)

    with ctx.db.read() as session:
        message = session.scalars(
            select(Message).where(Message.enrollment_id == result.enrollment_id)
        ).one()
    raw = inbound_mail(
        "reply_gmail", contact=contact.email, message_id=message.message_id,
        subject=message.subject,
    )  # fmt: skip
    dovecot.append(raw, msg_time=ctx.clock.now())
    polled = poll_mailbox(ctx, get_mailbox(ctx, mailbox_id))
    assert polled.error is None and polled.fetched >= 1
    with ctx.db.read() as session:
        enrollment = session.get_one(Enrollment, result.enrollment_id)
        assert (enrollment.state, enrollment.reason) == (
            EnrollmentState.UNENROLLED,
            UnenrollReason.REPLIED,
        )
    tab.visit(f"/enrollments/{result.enrollment_id}", "oauth-enrollment-replied")
    assert "replied" in page.content()
