"""The sequence page's results and chart, and an enrollment's activity, over HTTP."""

from __future__ import annotations

import re
from datetime import timedelta

from cadenza.domain.enums import EventKind
from cadenza.services.accounts.users import create_user
from cadenza.services.automation import rules as automation_rules
from cadenza.services.signals.effects import Signal, record_signal
from cadenza.store.models import Message
from tests.conftest import enroll_ids


def test_sequence_page_shows_results_rates_and_the_daily_chart(ctx, world, worker, ui):
    ids = enroll_ids(world, world.contacts(2))
    worker.run_until(ctx.clock.now() + timedelta(hours=1))
    with ctx.db.read() as session:
        first = session.query(Message).filter(Message.enrollment_id == ids[0]).one()
    record_signal(
        ctx,
        Signal(
            EventKind.REPLY, "reply-1", message_pk=first.id, data={"subject": "<script>x</script>"}
        ),
    )
    ui.login("rep@example.com", "pw")

    page = ui.client.get(f"/sequences/{world.sequence.id}").text
    assert 'id="analytics"' in page and "<polyline" in page
    assert "Replied</dt><dd>1 <small>50.0%</small>" in page
    assert "Emails sent: 2" in page

    activity = ui.client.get(f"/enrollments/{ids[0]}").text
    assert "Activity" in activity and "reply" in activity
    assert "<script>x</script>" not in activity and "&lt;script&gt;x&lt;/script&gt;" in activity


def test_sequence_page_lists_its_automation_rules(ctx, world, ui):
    admin = create_user(ctx, "boss@example.com", role="admin", password="pw")
    automation_rules.create_rule(
        ctx, admin.id, name="<i>VPs</i> from the webinar", sequence_id=world.sequence.id,
        trigger={"type": "contact_created"},
        action={"type": "enroll", "user_id": world.user.id},
    )  # fmt: skip
    ui.login("rep@example.com", "pw")
    page = ui.client.get(f"/sequences/{world.sequence.id}").text
    assert page.count('id="automation"') == 1 and "&lt;i&gt;VPs&lt;/i&gt; from the webinar" in page
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert title == "Follow-up · Cadenza"  # the section is in the page, not in its title
    assert "when contact created" in page and 'id="manage-rules"' not in page  # members
    ui.client.post("/logout", data={"csrf_token": ui.csrf("/")})
    ui.login("boss@example.com", "pw")
    page = ui.client.get(f"/sequences/{world.sequence.id}").text
    assert 'id="manage-rules"' in page and "/automation/rules/" in page
