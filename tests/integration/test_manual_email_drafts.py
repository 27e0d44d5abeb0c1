"""A manual email's draft is the final email, not a template: it is cleaned as a whole
when the rep edits it and again when it is sent, like an automated step's rendered body,
so nothing a rep pastes (or a tool writes into the table) reaches an inbox as script."""

from __future__ import annotations

from email import message_from_string
from email.policy import default as default_policy

from sqlalchemy import select, update

from cadenza.services.enrollment.tasks import TaskEdits, complete_task, list_tasks
from cadenza.store.models import Message, Task
from tests.conftest import enroll_ids

MANUAL = [{"type": "manual_email", "subject": "Draft for {{ contact.firstname }}",
           "body": "<p>Hi {{ contact.firstname }}</p>"}]  # fmt: skip
HOSTILE = (
    '<p>Hello</p>{{ "<img src=x onerror=alert(1)>" }}'
    "{# <script>alert(2)</script> #}<script>alert(3)</script>"
    '<a href="javascript:alert(4)">x</a><img src="x" onerror="alert(5)">'
    "{{ '<scr' ~ 'ipt>alert(6)</scr' ~ 'ipt>' }}"
)


def _draft(ctx, world):
    sequence = world.make_sequence(steps=MANUAL)
    enroll_ids(world, [world.contact()], sequence)
    return sequence


def _sent(ctx) -> Message:
    with ctx.db.read() as session:
        [message] = session.scalars(select(Message)).all()
    return message


def _assert_inert(message: Message) -> None:
    parsed = message_from_string(message.raw, policy=default_policy)
    html = parsed.get_body(("html",)).get_content()
    for where in (message.body_html, html):
        lowered = where.lower()
        assert "<script" not in lowered and "<img src=x" not in lowered
        assert "onerror" not in lowered and "javascript:" not in lowered


def test_an_edited_draft_is_cleaned_whole_jinja_looking_text_included(ctx, world, worker):
    _draft(ctx, world)
    worker.tick()
    [task] = list_tasks(ctx, owner_id=world.user.id)
    completed = complete_task(ctx, task.id, edits=TaskEdits(body=HOSTILE))
    assert completed.draft_body.startswith("<p>Hello</p>")
    assert "onerror" not in completed.draft_body and "<script" not in completed.draft_body
    # what looked like a template tag is HTML like the rest: its image keeps no handler,
    # the concatenated script is not one
    assert '{{ "<img src="x">" }}' in completed.draft_body
    assert "{{ 'alert(6)' }}" in completed.draft_body
    worker.tick()
    message = _sent(ctx)
    assert message.status == "sent"
    _assert_inert(message)
    assert "Hello" in message.body_html


def test_a_draft_stored_unclean_is_cleaned_when_it_is_sent(ctx, world, worker):
    _draft(ctx, world)
    worker.tick()
    [task] = list_tasks(ctx, owner_id=world.user.id)
    with ctx.db.transaction() as session:  # written by another tool, or before this check
        session.execute(update(Task).where(Task.id == task.id).values(draft_body=HOSTILE))
    complete_task(ctx, task.id)
    worker.tick()
    message = _sent(ctx)
    assert message.status == "sent"
    _assert_inert(message)
    assert "Hello" in message.body_html
