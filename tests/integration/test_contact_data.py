"""A contact's data (docs/contact-data.md): the export of everything held about one, the
erasure that leaves only an id and a keyed hash, and the suppression that keeps an
erased address from coming back; through the services, the API and the CLI, on both
databases."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from cadenza.domain.enums import EventKind
from cadenza.domain.link_tokens import Purpose, sign
from cadenza.services.accounts.link_secret import link_secret
from cadenza.services.accounts.users import create_user
from cadenza.services.crm import (
    contact_export,
    contact_import,
    contacts,
    lists,
    records,
    suppressions,
)
from cadenza.services.enrollment import tasks
from cadenza.services.signals import events, tracking
from cadenza.store.models import AuditEntry, Message, Suppression
from tests.conftest import MISSING_ID, assert_error, code_of, enroll_ids

STEPS = [
    {"type": "email", "subject": "Plan for {{ contact.firstname }}",
     "body": '<p>Hello, see <a href="https://example.test/plan">our plan</a></p>'},
    {"type": "task", "delay_days": 1, "task_type": "call", "task_title": "Call Ann"},
]  # fmt: skip
HUMAN = "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Mail"


@pytest.fixture
def history(ctx, world, worker):
    """Ann, with a little of everything: a list, a company, an enrollment that sent an
    email she opened, a task for the rep, and an unsubscribe at the end."""
    ann = world.contact("Ann@Corp.example", lastname="Lee", plan="pro")
    world.sequence = world.make_sequence(steps=STEPS, settings={"track_opens": True})
    made = lists.create_list(ctx, world.user.id, "Customers", "static")
    lists.change_members(ctx, world.user.id, made.contact_list.id, add=[ann.id])
    company = records.create_record(ctx, world.user.id, "company", name="Corp")
    records.associate(ctx, world.user.id, company.record.id, ann.id, primary=True)
    [enrollment_id] = enroll_ids(world, [ann])
    worker.run_until(ctx.clock.now() + timedelta(hours=1))
    with ctx.db.read() as session:
        message = session.scalars(select(Message).where(Message.contact_id == ann.id)).one()
    ctx.clock.advance(timedelta(minutes=10))  # past the open grace period
    tracking.record_open(ctx, sign(link_secret(ctx), Purpose.OPEN, message.tracking_id), HUMAN)
    ctx.clock.advance(timedelta(days=1, hours=1))
    tasks.create_due_tasks(ctx)
    events.receive(
        ctx, events.ExternalEvent(EventKind.UNSUBSCRIBE, "unsub-1", contact_email=ann.email)
    )
    return ann, enrollment_id, message, company.record


def test_an_admin_exports_everything_held_about_the_contact(ctx, world, history):
    ann, enrollment_id, message, company = history
    admin = create_user(ctx, "boss@example.com", role="admin")

    document = contact_export.export_contact(ctx, ann.id, actor_id=admin.id)

    assert json.loads(json.dumps(document)) == document  # JSON as it stands
    assert set(document) == {
        "format", "format_version", "exported_at", "exported_by", "complete", "omitted",
        "contact", "lists", "associations", "enrollments", "messages", "events", "tasks",
        "automation_events", "automation_runs", "audit",
    }  # fmt: skip
    assert (document["format"], document["format_version"]) == ("cadenza.contact-export", 1)
    assert document["complete"] is True and not any(document["omitted"].values())
    profile = document["contact"]
    assert (profile["email"], profile["lastname"], profile["properties"]) == (
        "Ann@corp.example", "Lee", {"plan": "pro"},
    )  # fmt: skip
    assert profile["unsubscribed_at"] is not None
    assert [item["name"] for item in document["lists"]] == ["Customers"]
    assert document["associations"] == [
        {"record_id": company.id, "type": "company", "name": "Corp", "is_primary": True,
         "created_at": document["associations"][0]["created_at"]}
    ]  # fmt: skip
    [enrollment] = document["enrollments"]
    assert enrollment["id"] == enrollment_id and enrollment["state"] == "unenrolled"
    assert [run["step_position"] for run in enrollment["step_runs"]] == [1, 2]
    [sent] = document["messages"]
    assert sent["message_id"] == message.message_id and sent["subject"] == "Plan for Ann"
    assert "our plan" in sent["body_html"] and sent["to_email"] == "Ann@corp.example"
    assert [a["outcome"] for a in sent["delivery_attempts"]] == ["sent"]
    assert sorted(e["kind"] for e in document["events"]) == ["open", "unsubscribe"]
    [task] = document["tasks"]
    assert task["title"] == "Call Ann" and task["status"] == "cancelled"
    actions = {(a["subject_type"], a["action"]) for a in document["audit"]}
    assert {("contact", "contact.create"), ("contact", "contact.unsubscribe"),
            ("enrollment", "enrollment.unenroll")} <= actions  # fmt: skip


def test_the_export_is_audited_and_a_missing_contact_is_refused(ctx, world, history):
    ann = history[0]
    contact_export.export_contact(ctx, ann.id, actor_id=world.user.id)
    with ctx.db.read() as session:
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "contact.export"))
    assert (entry.actor_id, entry.subject_id) == (world.user.id, ann.id)
    assert entry.data == {"complete": True, "omitted": dict.fromkeys(
        ("enrollments", "messages", "events", "tasks"), 0)}  # fmt: skip
    assert code_of(contact_export.export_contact, ctx, MISSING_ID) == "contact_not_found"


def test_others_export_only_what_the_policy_lets_them_read(ctx, world, history):
    """Another member reads the contact (the team's address book) but not the rep's
    enrollments, emails and tasks; a viewer reads every enrollment, not the emails."""
    ann, _, message, _ = history
    other = create_user(ctx, "olive@example.com")
    viewer = create_user(ctx, "vic@example.com", role="viewer")

    theirs = contact_export.export_contact(ctx, ann.id, actor_id=other.id)
    watched = contact_export.export_contact(ctx, ann.id, actor_id=viewer.id)

    assert theirs["complete"] is False
    assert theirs["omitted"] == {"enrollments": 1, "messages": 1, "events": 1, "tasks": 1}
    assert theirs["enrollments"] == theirs["messages"] == theirs["tasks"] == []
    assert [e["kind"] for e in theirs["events"]] == ["unsubscribe"]  # about the contact only
    assert message.message_id not in json.dumps(theirs)
    assert {a["subject_type"] for a in theirs["audit"]} == {"contact"}
    assert theirs["contact"]["email"] == "Ann@corp.example"
    assert len(watched["enrollments"]) == 1 and watched["messages"] == []
    assert watched["omitted"] == {"enrollments": 0, "messages": 1, "events": 1, "tasks": 1}


def _entries(ctx, action):
    with ctx.db.read() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_erasing_leaves_an_audit_entry_and_a_keyed_hash_without_personal_data(ctx, world, history):
    ann = history[0]
    contacts.delete_contact(ctx, ann.id, world.user.id)

    [entry] = _entries(ctx, "contact.delete")
    assert entry.subject_id == ann.id and entry.data == {"erased": True, "suppressed": True}
    with ctx.db.read() as session:
        [row] = session.scalars(select(Suppression))
        stored = json.dumps([[a.data for a in session.scalars(select(AuditEntry))],
                             row.email_hash])  # fmt: skip
    assert row.contact_id == ann.id
    for personal in ("ann@corp.example", "Ann", "Lee"):
        assert personal.lower() not in stored.lower()
    plain = hashlib.sha256(b"ann@corp.example").hexdigest()
    assert row.email_hash != plain and len(row.email_hash) == 64  # keyed, not guessable
    assert code_of(contact_export.export_contact, ctx, ann.id) == "contact_not_found"


def test_an_erased_address_is_not_created_again_by_any_path(ctx, world):
    ann = world.contact("ann@corp.example")
    bob = world.contact("bob@corp.example")
    contacts.delete_contact(ctx, ann.id)

    assert code_of(contacts.create_contact, ctx, {"email": "ANN@corp.example"}) == "suppressed"
    assert code_of(contacts.update_contact, ctx, bob.id, {"email": "ann@corp.example"}) == (
        "suppressed"
    )
    report = contact_import.import_contacts(
        ctx, b"email,firstname\ncid@corp.example,Cid\nAnn@Corp.example,Ann\nbob@corp.example,B\n"
    )
    assert (report.created, report.updated) == (1, 1)
    assert [(e.line, e.code) for e in report.errors] == [(3, "suppressed")]
    pasted = contacts.resolve_emails(ctx, "ann@corp.example, dan@corp.example", create_unknown=True)
    assert pasted.suppressed == ["ann@corp.example"] and pasted.created == ["dan@corp.example"]
    found = contacts.search_contacts(ctx, "ann").results
    assert found == []


def test_a_contact_without_an_address_is_erased_without_a_suppression(ctx):
    nameless = contacts.create_contact(ctx, {"firstname": "Nobody"})
    contacts.delete_contact(ctx, nameless.id)
    with ctx.db.read() as session:
        assert session.scalars(select(Suppression)).all() == []
    [entry] = _entries(ctx, "contact.delete")
    assert entry.data == {"erased": True, "suppressed": False}


def test_only_an_admin_lifts_a_suppression_and_it_is_audited(ctx, world):
    ann = world.contact("ann@corp.example")
    contacts.delete_contact(ctx, ann.id)
    admin = create_user(ctx, "boss@example.com", role="admin")
    for actor in (world.user, create_user(ctx, "vic@example.com", role="viewer")):
        assert code_of(suppressions.lift, ctx, "ann@corp.example", actor_id=actor.id) == (
            "permission_denied"
        )
    assert suppressions.is_suppressed(ctx, "Ann@corp.example", actor_id=admin.id)

    lifted = suppressions.lift(ctx, "Ann@Corp.example", actor_id=admin.id)

    assert lifted.contact_id == ann.id
    [entry] = _entries(ctx, "suppression.lift")
    assert entry.actor_id == admin.id and entry.data == {"erased_contact_id": ann.id}
    assert not suppressions.is_suppressed(ctx, "ann@corp.example", actor_id=admin.id)
    again = contacts.create_contact(ctx, {"email": "ann@corp.example"})
    # On SQLite the new contact may even get the erased one's id: her entries stay hers.
    document = contact_export.export_contact(ctx, again.id, actor_id=admin.id)
    assert [a["action"] for a in document["audit"]] == ["contact.create"]
    assert code_of(suppressions.lift, ctx, "ann@corp.example", actor_id=admin.id) == "not_found"
    assert code_of(suppressions.lift, ctx, "not an address", actor_id=admin.id) == "invalid_email"


# --- over HTTP and the command line ------------------------------------------------------


def test_the_api_exports_a_file_and_refuses_a_suppressed_address(api, world, history):
    ann = history[0]
    answer = api.get(f"/contacts/{ann.id}/export")
    assert answer.status_code == 200
    assert answer.headers["content-disposition"] == f'attachment; filename="contact-{ann.id}.json"'
    assert answer.json()["contact"]["id"] == ann.id and answer.json()["complete"] is True
    assert_error(api.get(f"/contacts/{MISSING_ID}/export"), 404, "contact_not_found")
    assert_error(api.get("/contacts/0/export"), 422, "validation_error")

    assert api.delete(f"/contacts/{ann.id}").status_code == 204
    assert_error(api.post("/contacts", json={"email": "ann@corp.example"}), 409, "suppressed")
    upload = {"file": ("c.csv", "email\nann@corp.example\n", "text/csv")}
    imported = api.post("/contacts/import", files=upload).json()
    assert imported["created"] == 0 and [e["code"] for e in imported["errors"]] == ["suppressed"]

    assert_error(api.post("/suppressions/lift", json={"email": "ann@corp.example"}), 403,
                 "permission_denied")  # fmt: skip
    assert_error(api.post("/suppressions/lift", json={"email": "x\x00@y"}, role="admin"), 422,
                 "validation_error")  # fmt: skip
    lifted = api.post("/suppressions/lift", json={"email": "ann@corp.example"}, role="admin")
    assert lifted.status_code == 200 and lifted.json()["erased_contact_id"] == ann.id
    assert api.post("/contacts", json={"email": "ann@corp.example"}).status_code == 201


def test_the_cli_exports_erases_and_lifts_a_suppression(cli, ctx, world, tmp_path):
    ann = world.contact("ann@corp.example", lastname="Lee")
    out = tmp_path / "ann.json"

    printed = cli("contacts", "export", ann.id, "--output", out)

    assert f"contact {ann.id} exported to" in printed
    assert json.loads(out.read_text())["contact"]["lastname"] == "Lee"
    assert out.stat().st_mode & 0o777 == 0o600
    assert json.loads(cli("contacts", "export", ann.id))["contact"]["id"] == ann.id
    assert "contact_not_found" in cli("contacts", "export", MISSING_ID, ok=False)

    keys = {"CADENZA_KEY_FILE": ctx.settings.key_file}  # the link key the test's ctx made
    viewer = create_user(ctx, "vic@example.com", role="viewer")
    refused = cli("contacts", "erase", ann.id, "--yes", "--as", viewer.email, ok=False, env=keys)
    assert "permission_denied" in refused
    erased = cli("contacts", "erase", ann.id, "--yes", "--as", world.user.email, env=keys)
    assert f"contact {ann.id} erased" in erased
    create_user(ctx, "boss@example.com", role="admin")
    refused = cli("contacts", "unsuppress", "ann@corp.example", "--as", world.user.email,
                  ok=False, env=keys)  # fmt: skip
    assert "permission_denied" in refused
    lifted = cli("contacts", "unsuppress", "ann@corp.example", "--as", "boss@example.com",
                 env=keys)  # fmt: skip
    assert f"erased contact {ann.id}" in lifted


def test_the_contact_page_offers_the_download(ctx, world):
    import re

    from fastapi.testclient import TestClient

    from cadenza.web.app import create_app

    ann = world.contact("ann@corp.example", lastname="Lee")
    create_user(ctx, "vic@example.com", role="viewer", password="page-pass-1")
    browser = TestClient(create_app(ctx))
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/login").text).group(1)
    signed_in = browser.post(
        "/login",
        data={"email": "vic@example.com", "password": "page-pass-1", "next": "/",
              "csrf_token": csrf},
        follow_redirects=False,
    )  # fmt: skip
    assert signed_in.status_code == 303

    page = browser.get(f"/contacts/{ann.id}").text
    assert f'href="/contacts/{ann.id}/export" class="button" id="download-contact-data"' in page
    download = browser.get(f"/contacts/{ann.id}/export")
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.json()["contact"]["lastname"] == "Lee"
    assert browser.get(f"/contacts/{MISSING_ID}/export").status_code == 404
