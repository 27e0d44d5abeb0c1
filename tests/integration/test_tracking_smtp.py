"""Unsubscribe headers and links as a real SMTP server receives them, then followed over HTTP.

The engine sends to the aiosmtpd sink; the test parses what arrived (not what was
stored) and posts the one-click URL from its List-Unsubscribe header to the app, as a
mailbox provider would.
"""

from datetime import timedelta
from email.parser import BytesParser
from email.policy import default

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cadenza.services.enrollment.tasks import TaskEdits, complete_task, list_tasks
from cadenza.store.models import Contact, Enrollment
from cadenza.web.app import create_app
from tests.conftest import enroll_ids
from tests.support.smtp_sink import SmtpSink

STEPS = [
    {"type": "email", "subject": "Hi {{ contact.firstname }}",
     "body": '<p>Pricing: <a href="https://example.com/pricing">here</a></p>'},
    {"type": "manual_email", "delay_days": 2, "thread_with_step": 1,
     "body": "<p>Personal note. <a href=\"{{ unsubscribe_url }}\">No more emails</a></p>"},
    {"type": "email", "delay_days": 2, "thread_with_step": 1, "body": "<p>Last one</p>"},
]  # fmt: skip


@pytest.fixture
def sink():
    with SmtpSink() as server:
        yield server


@pytest.fixture
def smtp_world(world, sink):
    world.send_over_smtp(
        sink.host,
        sink.port,
        steps=STEPS,
        settings={"track_clicks": True, "track_opens": True},
        name="Tracked",
    )
    return world


def received(sink, index):
    message = sink.messages[index]
    return BytesParser(policy=default).parsebytes(message.data)


def test_received_emails_unsubscribe_in_one_click(ctx, smtp_world, sink, worker):
    contact = smtp_world.contact()
    [eid] = enroll_ids(smtp_world, [contact])
    worker.run_until(ctx.clock.now() + timedelta(minutes=1))
    first = received(sink, 0)
    header = str(first["List-Unsubscribe"])
    assert header.startswith(f"<{ctx.settings.public_url}/u/") and header.endswith(">")
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = header[1:-1]
    html = first.get_body(("html",)).get_content()
    text = first.get_body(("plain",)).get_content()
    assert f'href="{url}"' in html and url in text
    assert "https://example.com/pricing" not in html  # behind a signed redirect
    assert "https://example.com/pricing" in text  # the plain text shows the real link
    assert f"{ctx.settings.public_url}/o/" in html

    # the manual email written from a task carries the same headers, and the link
    # the template placed itself instead of the footer
    worker.run_until(ctx.clock.now() + timedelta(days=3))
    [task] = list_tasks(ctx, owner_id=smtp_world.user.id)
    complete_task(ctx, task.id, edits=TaskEdits(subject="Following up"))
    worker.run_until(ctx.clock.now() + timedelta(minutes=1))
    manual = received(sink, 1)
    manual_url = str(manual["List-Unsubscribe"])[1:-1]
    assert manual["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    manual_html = manual.get_body(("html",)).get_content()
    assert f'href="{manual_url}"' in manual_html and "No more emails" in manual_html
    assert "Not interested?" not in manual_html and manual_url != url

    client = TestClient(create_app(ctx))
    response = client.post(
        url.removeprefix(ctx.settings.public_url),
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    with ctx.db.read() as session:
        assert session.get(Contact, contact.id).unsubscribed_at is not None
        enrollment = session.scalar(select(Enrollment).where(Enrollment.id == eid))
        assert (enrollment.state, enrollment.reason) == ("unenrolled", "unsubscribed")
    worker.run_until(ctx.clock.now() + timedelta(days=10))
    assert len(sink.messages) == 2  # the last step never goes out
