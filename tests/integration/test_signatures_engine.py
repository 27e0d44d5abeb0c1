"""Signatures through the engine to a real SMTP server: placed by {{ sender.signature }},
appended by the sequence setting, in the HTML and the text part; manual-email drafts get
it too; the meeting link is a token like any other and is tracked as a click."""

from __future__ import annotations

from datetime import timedelta
from email.parser import BytesParser
from email.policy import default

import pytest

from cadenza.services.accounts import profile
from cadenza.services.enrollment import tasks
from cadenza.store.models import Message
from tests.conftest import enroll_ids
from tests.support.rows import rows
from tests.support.smtp_sink import SmtpSink

SIGNATURE = '<p><strong>Riley Rep</strong><br>Acme · <a href="https://acme.example">acme</a></p>'


@pytest.fixture
def sink():
    with SmtpSink() as server:
        yield server


def _parts(received) -> tuple[str, str]:
    message = BytesParser(policy=default).parsebytes(received.data)
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    return html, text


def test_token_and_appended_signature_reach_the_sink_in_html_and_text(ctx, world, sink, worker):
    profile.update_profile(
        ctx, world.user.id, world.user.id,
        {"signature_html": SIGNATURE, "meeting_link": "https://cal.example/riley/30"},
    )  # fmt: skip
    placed = [{"type": "email", "subject": "Hi", "body": (
        '<p>Hello {{ contact.firstname }}</p>{{ sender.signature }}'
        '<p><a href="{{ sender.meeting_link }}">Book</a></p>')}]  # fmt: skip
    world.send_over_smtp(sink.host, sink.port, steps=placed, name="Placed",
                         settings={"track_clicks": True})  # fmt: skip
    appended = world.make_sequence(
        steps=[{"type": "email", "subject": "Hey", "body": "<p>Quick one</p>"}], name="Appended"
    )
    plain = world.make_sequence(
        steps=[{"type": "email", "subject": "Plain", "body": "<p>No signature</p>"}],
        name="Off", settings={"append_signature": False},
    )  # fmt: skip
    enroll_ids(world, [world.contact("ann@corp.example")])
    enroll_ids(world, [world.contact("bob@corp.example")], sequence=appended)
    enroll_ids(world, [world.contact("cy@corp.example")], sequence=plain)
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))

    by_recipient = {m.rcpt_tos[0]: _parts(m) for m in sink.messages}
    html, text = by_recipient["ann@corp.example"]
    assert "<strong>Riley Rep</strong>" in html and html.count("Riley Rep") == 1
    assert html.index("Hello Ann") < html.index("Riley Rep") < html.index("Book")
    assert "Riley Rep" in text and "{{" not in text and "cdzsender" not in html + text
    assert "https://cal.example/riley/30" not in html  # click tracking rewrote the link
    [ann] = [m for m in rows(ctx, Message) if m.to_email == "ann@corp.example"]
    assert "https://cal.example/riley/30" in str(ann.links)

    html, text = by_recipient["bob@corp.example"]
    assert html.index("Quick one") < html.index("Riley Rep")
    assert text.index("Quick one") < text.index("Riley Rep")
    html, text = by_recipient["cy@corp.example"]
    assert "Riley Rep" not in html + text


def test_a_manual_email_draft_carries_the_signature(ctx, world, worker):
    profile.update_profile(ctx, world.user.id, world.user.id, {"signature_html": SIGNATURE})
    sequence = world.make_sequence(
        steps=[{"type": "manual_email", "subject": "Hi", "body": "<p>Draft body</p>"}],
        name="Manual",
    )
    enroll_ids(world, [world.contact()], sequence=sequence)
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    [task] = tasks.list_tasks(ctx, owner_id=world.user.id)
    assert "Draft body" in task.draft_body and "<strong>Riley Rep</strong>" in task.draft_body


def test_cli_sets_profiles_and_booking_secrets_as_the_policy_allows(cli, database, clock):
    from cadenza.config import Settings
    from cadenza.services.accounts import users
    from cadenza.services.context import Context
    from cadenza.services.signals import bookings

    ctx = Context(db=database, clock=clock, settings=Settings(database_url=database.url))
    users.create_user(ctx, "ann@example.com")
    boss = users.create_user(ctx, "boss@example.com", role="admin")
    shown = cli("user", "profile", "ann@example.com", "--as", "ann@example.com",
                "--signature", "<p>Ann<script>x()</script></p>",
                "--meeting-link", "https://cal.example/ann")  # fmt: skip
    assert "<p>Ann</p>" in shown and "script" not in shown and "https://cal.example/ann" in shown
    refused = cli("user", "profile", "boss@example.com", "--as", "ann@example.com",
                  "--clear-signature", ok=False)  # fmt: skip
    assert "permission_denied" in refused
    assert "validation_error" in cli("user", "profile", "ann@example.com", "--as",
                                     "boss@example.com", "--meeting-link", "javascript:x",
                                     ok=False)  # fmt: skip
    secret = {"CADENZA_BOOKING_SECRET": "cli-signing-secret-0123"}
    assert "permission_denied" in cli(
        "integrations", "set-secret", "calcom", "--as", "ann@example.com", env=secret, ok=False
    )
    cli("integrations", "set-secret", "calcom", "--as", "boss@example.com", env=secret)
    status = cli("integrations", "status", "--as", "boss@example.com")
    assert "cli-signing-secret" not in status
    assert [s.configured for s in bookings.secret_status(ctx, boss.id)] == [True, False]
