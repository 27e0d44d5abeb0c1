"""Sending failed emails again from the outbox (issue 14 §4), over HTTP on both
databases: the Failed section, the chosen ones with a reason, the results listed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cadenza.store.models import Message
from tests.conftest import enroll_ids
from tests.support.smtp_sink import SmtpSink

ONE_STEP = [{"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"}]


@pytest.fixture
def failed_two(ctx, world, worker):
    """Two emails refused for good by a real SMTP server."""
    with SmtpSink() as sink:
        world.send_over_smtp(sink.host, sink.port, steps=ONE_STEP, name="One")
        sink.fail_next("RCPT", "550 5.1.1 no such user", times=2)
        enroll_ids(world, world.contacts(2))
        worker.run_until(ctx.clock.now() + timedelta(minutes=1))  # the mailbox's spacing
    with ctx.db.read() as session:
        rows = list(session.scalars(select(Message).order_by(Message.id)))
    assert [m.status for m in rows] == ["failed", "failed"]
    return rows


def _status(ctx, message_id):
    with ctx.db.read() as session:
        return session.get(Message, message_id).status


def test_the_outbox_lists_failed_emails_and_sends_the_chosen_ones_again(ctx, rep, failed_two):
    first, second = failed_two
    page = rep.client.get("/outbox").text
    assert 'id="failed-title"' in page and "550 5.1.1 no such user" in page
    assert f'name="message" value="{first.id}"' in page
    done = rep.client.post(
        "/outbox/retry",
        data={"csrf_token": rep.token, "message": [str(first.id)], "reason": "typo fixed"},
    )
    assert done.status_code == 200 and 'id="retry-results"' in done.text
    assert f"Message {first.id}: queued to go again now" in done.text
    assert (_status(ctx, first.id), _status(ctx, second.id)) == ("prepared", "failed")


def test_a_reason_is_required_and_nothing_changes_without_one(ctx, rep, failed_two):
    first, _ = failed_two
    refused = rep.client.post(
        "/outbox/retry", data={"csrf_token": rep.token, "message": str(first.id), "reason": " "}
    )
    assert refused.status_code == 422 and 'id="retry-error"' in refused.text
    assert _status(ctx, first.id) == "failed"


def test_one_failed_message_page_offers_to_send_it_again(ctx, rep, failed_two):
    first, _ = failed_two
    page = rep.client.get(f"/outbox/{first.id}").text
    assert 'id="retry-one"' in page and f'name="message" value="{first.id}"' in page
    done = rep.client.post(
        "/outbox/retry", data={"csrf_token": rep.token, "message": str(first.id), "reason": "ok"}
    )
    assert f"Message {first.id}: queued to go again now" in done.text
    assert 'id="retry-one"' not in rep.client.get(f"/outbox/{first.id}").text
