"""The command line end to end, as the README's tour runs it, on both databases."""

import re
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from cadenza.services.demo import CONTACT_COUNT, DEMO_EMAIL
from cadenza.store.models import Contact, Sequence
from tests.conftest import MISSING_ID


@pytest.fixture
def demo(cli):
    cli("db", "upgrade")
    out = cli("demo")
    assert DEMO_EMAIL in out and "cdz_" in out
    return cli


@pytest.fixture
def ids(demo, database):
    """The demo's first sequence and its contacts in seeded order, looked up: the ids are
    the database's (on PostgreSQL they keep counting across tests)."""
    with database.read() as session:
        sequence = session.scalars(
            select(Sequence.id).where(Sequence.name == "Inbound lead follow-up")
        ).one()
        contacts = list(session.scalars(select(Contact.id).order_by(Contact.id)))
    return SimpleNamespace(sequence=sequence, contacts=contacts)


def test_demo_loads_once(demo):
    assert "already has data" in demo("demo", ok=False)
    assert "already has data" in demo("demo", "--if-empty")
    listing = demo("sequences", "list")
    assert "Inbound lead follow-up" in listing and "Webinar invite" in listing
    assert "more: --after" in demo("contacts", "list")


def test_tour_enroll_refuse_and_show_timeline(demo, ids):
    seq, (first, second) = ids.sequence, ids.contacts[:2]
    contacts = demo("contacts", "list", "--limit", CONTACT_COUNT)
    bounced = re.search(r"│ (\d+) .*bounced", contacts).group(1)
    out = demo("enroll", seq, first, second, bounced, "--dry-run")
    assert "would enroll" in out and f"contact {bounced}: bounced" in out
    assert "enrolled" not in out.replace("can be enrolled", "")
    out = demo("enroll", seq, first, second, bounced)
    enrollment_id = re.search(r"enrolled \(enrollment (\d+)\)", out).group(1)
    assert "2 of 3 contacts enrolled" in out
    again = demo("enroll", seq, first, ok=False)
    assert "already_enrolled" in again
    shown = demo("enrollments", "show", enrollment_id, "--tz", "Asia/Kolkata")
    assert "pending" in shown and "projected" in shown and "IST" in shown
    demo("enrollments", "pause", enrollment_id)
    assert "paused" in demo("enrollments", "list", "--state", "paused")
    demo("enrollments", "resume", enrollment_id)
    demo("enrollments", "unenroll", enrollment_id, "--reason", "manual")
    assert "invalid_state" in demo("enrollments", "pause", enrollment_id, ok=False)


def test_whole_request_errors_are_one_clear_line(demo, ids):
    seq, first = ids.sequence, ids.contacts[0]
    out = demo("enroll", seq, first, "--timezone", "Mars/Phobos", ok=False)
    assert "error invalid_timezone: 'Mars/Phobos' is not an IANA time zone" in out
    out = demo("enroll", seq, first, "--send-at", "tomorrow", ok=False)
    assert "validation_error" in out and "--send-at" in out
    out = demo("enroll", seq, *ids.contacts[:51], ok=False)
    assert "bulk_limit_exceeded" in out
    assert "Traceback" not in out


def test_missing_token_values_are_listed_and_can_be_given(demo, ids):
    no_firstname = ids.contacts[3]  # the demo's fourth contact has no first name
    contacts = demo("contacts", "list", "--limit", 20)
    assert re.search(rf"│ {no_firstname} ", contacts)
    out = demo("enroll", ids.sequence, no_firstname, "--dry-run", ok=False)
    assert "missing_token_values" in out and "contact.firstname" in out
    given = demo("enroll", ids.sequence, no_firstname, "--dry-run", "--token", "firstname=there")
    assert "would enroll" in given


def test_import_reports_bad_rows_and_refuses_huge_files(demo, tmp_path):
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text("email,firstname\nnew@x.example,New\nbroken,Row\n", encoding="utf-8")
    out = demo("contacts", "import", csv_file, ok=False)
    assert "line 3: invalid_email" in out and "1 created" in out
    huge = tmp_path / "huge.csv"
    with huge.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    out = demo("contacts", "import", huge, ok=False)
    assert "file_too_large" in out


def test_user_token_and_sequence_creation(cli, tmp_path):
    cli("db", "upgrade")
    cli("user", "create", "ops@example.com", "--role", "admin", "--password", "s3cret")
    assert "conflict" in cli("user", "create", "ops@example.com", "--password", "x", ok=False)
    assert re.search(r"cdz_\S{20,}", cli("token", "create", "--as", "ops@example.com"))
    spec = tmp_path / "seq.json"
    spec.write_text(
        '{"name": "Mine", "steps": [{"type": "email", "subject": "Hi", "body": "<p>Hi</p>"}]}'
    )
    created = cli("sequences", "create", spec)
    assert re.fullmatch(r"sequence \d+ created: Mine \(1 steps\)\n", created), created
    spec.write_text("{not json")
    assert "not valid JSON" in cli("sequences", "create", spec, ok=False)


def test_webhooks_from_the_command_line(demo):
    out = demo(
        "webhooks", "create", "https://hooks.example/cadenza", "--event", "enrolled",
        "--event", "replied", "--as", DEMO_EMAIL,
    )  # fmt: skip
    webhook_id = re.search(r"webhook (\d+) →", out).group(1)
    secret = re.search(r"secret \(shown once\): (whsec_\S+)", out).group(1)
    listing = demo("webhooks", "list")
    assert "hooks.example/cadenza" in listing and "enrolled, replied" in listing
    assert secret not in listing
    assert "validation_error" in demo(
        "webhooks", "create", "ftp://x", "--event", "enrolled", "--as", DEMO_EMAIL, ok=False
    )
    demo("user", "create", "mia@example.com", "--role", "member", "--password", "pw-mia-12345")
    assert "permission_denied" in demo(
        "webhooks", "delete", webhook_id, "--as", "mia@example.com", ok=False
    )
    assert "ping" in demo("webhooks", "test", webhook_id)
    assert "ping" in demo("webhooks", "deliveries", webhook_id)
    demo("webhooks", "delete", webhook_id, "--as", DEMO_EMAIL)
    assert "not_found" in demo("webhooks", "deliveries", webhook_id, ok=False)


def test_analytics_and_events_from_the_command_line(demo, ids):
    out = demo("enroll", ids.sequence, *ids.contacts[:2])
    enrollment_id = re.search(r"enrolled \(enrollment (\d+)\)", out).group(1)
    report = demo("sequences", "analytics", ids.sequence)
    assert "enrolled" in report and "rates:" in report and "open rate" in report
    assert "reply_rate —" in report  # nothing sent yet: no rate rather than 0%
    events = demo("enrollments", "events", enrollment_id, "--tz", "Europe/Rome")
    assert "enrolled" in events and re.search(r"\bCES?T\b", events)  # Rome, in any season
    assert "sequence_not_found" in demo("sequences", "analytics", MISSING_ID, ok=False)


def test_integration_tokens_and_undoing_an_event_from_the_command_line(demo, database):
    from sqlalchemy import select

    from cadenza.domain.enums import EventKind
    from cadenza.services.context import Context
    from cadenza.services.signals import events
    from cadenza.store.models import Contact

    demo("user", "create", "mia@example.com", "--role", "member", "--password", "pw-mia-12345")
    assert "permission_denied" in demo(
        "token", "create", "--scope", "events", "--as", "mia@example.com", ok=False
    )
    out = demo("token", "create", "--name", "crm", "--scope", "events", "--as", DEMO_EMAIL)
    assert re.search(r"cdz_\S{20,}", out)
    assert "validation_error" in demo(
        "token", "create", "--scope", "everything", "--as", DEMO_EMAIL, ok=False
    )
    ctx = Context(db=database)
    with database.read() as session:
        who = session.scalar(
            select(Contact)
            .where(Contact.unsubscribed_at.is_(None), Contact.email.is_not(None))
            .order_by(Contact.id)
        )
    mistake = events.ExternalEvent(EventKind.UNSUBSCRIBE, "oops-1", contact_email=who.email)
    event_id = events.receive(ctx, mistake).event_id
    listing = demo("events", "list", "--kind", "unsubscribe")
    assert re.search(rf"\b{event_id}\b.*unsubscribe", listing)
    assert "permission_denied" in demo(
        "events", "revoke", event_id, "--reason", "typo", "--as", "mia@example.com", ok=False
    )
    out = demo("events", "revoke", event_id, "--reason", "wrong contact", "--as", DEMO_EMAIL)
    assert f"event {event_id} revoked; contact {who.id} no longer unsubscribed" in out
    with database.read() as session:
        assert session.get(Contact, who.id).unsubscribed_at is None
    assert "revoked" in demo("events", "list", "--kind", "unsubscribe")
    assert "not_found" in demo(
        "events", "revoke", "999999", "--reason", "typo", "--as", DEMO_EMAIL, ok=False
    )


def test_archive_and_unarchive_from_the_command_line(demo, ids, database):
    """Issue 11 item 4: an archived sequence is listed under --archived and comes back."""
    with database.read() as session:
        webinar = session.scalars(
            select(Sequence.id).where(Sequence.name == "Webinar invite")
        ).one()
    assert "archived" in demo("sequences", "archive", webinar, "--as", DEMO_EMAIL)
    assert "Webinar invite" not in demo("sequences", "list")
    assert "Webinar invite" in demo("sequences", "list", "--archived")
    assert f"unarchive {webinar}" in demo("sequences", "show", webinar)
    assert "sequence_archived" in demo("enroll", webinar, ids.contacts[0], ok=False)
    refused = demo("sequences", "archive", webinar, "--as", DEMO_EMAIL, ok=False)
    assert "sequence_archived" in refused
    assert "unarchived" in demo("sequences", "unarchive", webinar, "--as", DEMO_EMAIL)
    assert "Webinar invite" in demo("sequences", "list")


def test_the_cli_says_why_an_enrollment_is_paused_and_until_when(demo, ids, database):
    """Issue 11 item 11: out of office (resumes by itself, when) or a person's pause."""
    from datetime import date

    from cadenza.domain.enums import EventKind
    from cadenza.services.context import Context
    from cadenza.services.signals.effects import Signal, record_signal

    out = demo("enroll", ids.sequence, *ids.contacts[:2])
    first, second = re.findall(r"enrolled \(enrollment (\d+)\)", out)
    auto = Signal(
        EventKind.AUTO_REPLY, "ooo-cli", contact_id=ids.contacts[0], return_date=date(2099, 1, 5)
    )
    assert record_signal(Context(db=database), auto).paused == [int(first)]
    shown = demo("enrollments", "show", first)
    assert "paused by an out-of-office reply: resumes by itself" in shown and "2099-01-05" in shown
    assert "2099-01-05" in demo("enrollments", "list", "--state", "paused")
    demo("enrollments", "pause", second)
    shown = demo("enrollments", "show", second)
    assert "paused by a person" in shown and "on hold until resumed" in shown
    assert "paused by a person" in demo("enrollments", "list", "--state", "paused")
