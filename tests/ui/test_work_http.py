"""The rep's daily work over HTTP: a manual email's draft edited and sent from the task
queue, tasks skipped, enrollments paused, resumed and unenrolled in bulk."""

from __future__ import annotations

import re

from cadenza.services.delivery import outbox
from cadenza.services.enrollment import tasks
from cadenza.services.enrollment import views as enrollment_views
from tests.conftest import enroll_ids
from tests.ui.conftest import csrf_token


def test_a_manual_email_draft_is_edited_and_sent_from_the_queue(rep, ctx, world, worker):
    sequence = world.make_sequence(
        steps=[{"type": "manual_email", "subject": "Hi {{ contact.firstname }}",
                "body": "<p>Draft for {{ contact.firstname }}</p>"}],
        name="Manual",
    )  # fmt: skip
    enroll_ids(world, [world.contact()], sequence=sequence)
    worker.tick()
    [task] = tasks.list_tasks(ctx, owner_id=world.user.id)
    queue = rep.client.get("/tasks").text
    assert "Send email: Hi Ann" in queue and f'href="/tasks/{task.id}" class="button"' in queue
    draft = rep.client.get(f"/tasks/{task.id}").text
    assert 'value="Hi Ann"' in draft and "Draft for Ann" in draft

    empty = rep.client.post(
        f"/tasks/{task.id}/complete", data={"csrf_token": rep.token, "subject": " ", "body": ""}
    )
    assert empty.status_code == 422
    assert re.search(r'id="task-error"[^>]*>the email needs a subject and a body<', empty.text)
    assert tasks.get_task(ctx, task.id).status == "open"

    sent = rep.client.post(
        f"/tasks/{task.id}/complete",
        data={"csrf_token": rep.token, "subject": "Hi Ann, as promised",
              "body": "<p>Edited <script>x()</script></p>"},
        follow_redirects=False,
    )  # fmt: skip
    assert sent.status_code == 303 and sent.headers["location"] == "/tasks"
    worker.tick()
    [message] = outbox.list_messages(ctx, status="sent")
    assert message.subject == "Hi Ann, as promised"
    assert "Edited" in message.body_html and "script" not in message.body_html
    again = rep.client.post(f"/tasks/{task.id}/skip", data={"csrf_token": rep.token})
    assert again.status_code == 409


def test_a_call_task_is_skipped_and_the_sequence_goes_on(rep, ctx, world, worker):
    sequence = world.make_sequence(
        steps=[{"type": "task", "task_type": "call", "task_title": "Call {{ contact.firstname }}"},
               {"type": "email", "delay_days": 1, "subject": "After the call", "body": "<p>x</p>"}],
        name="Call first",
    )  # fmt: skip
    [enrollment_id] = enroll_ids(world, [world.contact()], sequence=sequence)
    worker.tick()
    [task] = tasks.list_tasks(ctx, owner_id=world.user.id)
    assert "Call Ann" in rep.client.get("/tasks").text
    rep.client.post(f"/tasks/{task.id}/skip", data={"csrf_token": rep.token})
    assert tasks.get_task(ctx, task.id).status == "skipped"
    steps = enrollment_views.get_enrollment(ctx, enrollment_id).steps
    assert [s.status for s in steps] == ["done", "pending"]


def test_enrollments_are_paused_resumed_and_unenrolled_in_bulk(rep, ctx, world):
    ids = enroll_ids(world, world.contacts(3))
    page = rep.client.get("/enrollments")
    assert page.text.count('class="card enrollment"') == 3
    token = csrf_token(page.text)

    def bulk(action, chosen):
        return rep.client.post(
            "/enrollments",
            data={"csrf_token": token, "action": action, "enrollment": [str(i) for i in chosen]},
        )

    def states():
        return [enrollment_views.get_enrollment(ctx, i).enrollment.state for i in ids]

    assert bulk("pause", ids[:2]).text.count("done") == 2
    assert states() == ["paused", "paused", "active"]
    resumed = bulk("resume", ids)
    assert resumed.text.count("done") == 2 and "it cannot be resumed" in resumed.text
    bulk("unenroll", ids[:1])
    assert states() == ["unenrolled", "active", "active"]
    filtered = rep.client.get("/enrollments?state=unenrolled")
    assert filtered.text.count('class="card enrollment"') == 1
    assert bulk("explode", ids).status_code == 422
    assert bulk("pause", []).status_code == 422


def test_the_contact_record_shows_its_emails_tasks_and_enrollments(rep, ctx, world, worker):
    ann = world.contact(timezone="Asia/Tokyo")
    other = world.contact("bo@corp.example", firstname="Bo")
    enroll_ids(world, [ann, other])
    worker.tick()
    page = rep.client.get(f"/contacts/{ann.id}").text
    assert page.count('class="subject"') == 1 and "Hi Ann" in page and "Hi Bo" not in page
    assert "JST their time" in page and "Follow-up" in page
    assert "Step 3" in page  # the projected call task
