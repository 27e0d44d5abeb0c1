"""Whose is whose in the web app, over HTTP (no browser), on SQLite and PostgreSQL.

The bug this guards: a member opened another member's sequence in the web editor,
rewrote its body (the owner's next contact got the rewritten email from the owner's
mailbox) and could archive it. Also the tasks and the outbox: another member's task
or email answers as a missing one, and is neither shown nor changed.
"""

from __future__ import annotations

import pytest

from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.accounts.users import create_user
from cadenza.services.delivery import outbox
from cadenza.services.enrollment import tasks
from cadenza.services.sequences import catalog as sequences
from tests.conftest import enroll_ids
from tests.ui.conftest import Ui

REWRITE = {
    "name": "Hijacked",
    "step_count": "1",
    "step-1-type": "email",
    "step-1-subject": "Pay this invoice",
    "step-1-body": "<p>Rewritten by someone else</p>",
    "follow_up_days": "every_day",
    "op": "save",
}


@pytest.fixture
def member_b(ctx, world):
    """Another member, with a mailbox of their own, signed in over HTTP."""
    bea = create_user(ctx, "bea@example.com", password="bea-secret")
    create_mailbox(ctx, bea.id, "bea@example.com")
    other = Ui(ctx, world)
    assert other.login("bea@example.com", "bea-secret").status_code == 303
    other.token = other.csrf("/tasks")
    return other


def _post(ui, path: str, data: dict | None = None):
    return ui.client.post(
        path, data={**(data or {}), "csrf_token": ui.token}, follow_redirects=False
    )


def test_member_b_can_neither_save_nor_archive_member_a_s_sequence(ctx, world, member_b, rep):
    sequence = world.sequence  # member A's (the rep's)
    before = [(s.subject, s.body) for s in sequences.get_sequence(ctx, sequence.id).steps]

    assert member_b.client.get(f"/sequences/{sequence.id}/edit").status_code == 403
    assert 'id="edit-sequence"' not in member_b.client.get(f"/sequences/{sequence.id}").text
    saved = _post(member_b, f"/sequences/{sequence.id}/edit", REWRITE)
    assert saved.status_code == 403 and "permission_denied" in saved.text
    archived = _post(member_b, f"/sequences/{sequence.id}/archive")
    assert archived.status_code == 403

    kept = sequences.get_sequence(ctx, sequence.id)  # still live, still as A wrote it
    assert kept.name == "Follow-up" and kept.archived_at is None
    assert [(s.subject, s.body) for s in kept.steps] == before

    # The owner can, through the same pages: the refusal is about whose it is.
    assert 'id="edit-sequence"' in rep.client.get(f"/sequences/{sequence.id}").text
    assert _post(rep, f"/sequences/{sequence.id}/edit", REWRITE).status_code == 303
    assert [s.body for s in sequences.get_sequence(ctx, sequence.id).steps] == [
        "<p>Rewritten by someone else</p>"
    ]
    assert _post(rep, f"/sequences/{sequence.id}/archive").status_code == 204


def test_another_member_s_task_is_not_found_and_stays_open(ctx, world, worker, member_b, rep):
    sequence = world.make_sequence(
        steps=[{"type": "task", "task_type": "call", "task_title": "Call {{ contact.firstname }}"}],
        name="Calls",
    )
    enroll_ids(world, [world.contact()], sequence=sequence)
    worker.tick()
    [task] = tasks.list_tasks(ctx, owner_id=world.user.id)

    assert "Call Ann" not in member_b.client.get("/tasks").text
    assert member_b.client.get(f"/tasks/{task.id}").status_code == 404
    assert _post(member_b, f"/tasks/{task.id}/complete").status_code == 404
    assert _post(member_b, f"/tasks/{task.id}/skip").status_code == 404
    assert tasks.get_task(ctx, task.id).status == "open"

    assert "Call Ann" in rep.client.get("/tasks").text
    assert rep.client.get(f"/tasks/{task.id}").status_code == 200
    assert _post(rep, f"/tasks/{task.id}/skip").status_code == 303
    assert tasks.get_task(ctx, task.id).status == "skipped"


def test_another_member_s_email_is_not_in_their_outbox(ctx, world, worker, member_b, rep):
    enroll_ids(world, [world.contact("ann@corp.example")])
    worker.tick()
    [message] = outbox.list_messages(ctx, status="sent")

    page = member_b.client.get("/outbox").text
    assert "ann@corp.example" not in page and f"/outbox/{message.id}" not in page
    assert member_b.client.get(f"/outbox/{message.id}").status_code == 404
    assert member_b.client.get(f"/outbox/{message.id}/body").status_code == 404
    review = _post(member_b, f"/outbox/{message.id}/review", {"delivered": "no"})
    assert review.status_code == 404
    assert outbox.get_message(ctx, message.id)[0].status == "sent"

    page = rep.client.get("/outbox").text
    assert "ann@corp.example" in page and f"/outbox/{message.id}" in page
    assert rep.client.get(f"/outbox/{message.id}").status_code == 200
    assert "Hello" in rep.client.get(f"/outbox/{message.id}/body").text
