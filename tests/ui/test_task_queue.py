"""A rep's day in the browser: five tasks of mixed types worked through with the keyboard
alone ("Start tasks", then keys only), a call logged as a booked meeting that ends its
enrollment, and a manual email edited and sent from the queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cadenza.services.crm import contacts
from cadenza.services.delivery import outbox
from cadenza.services.enrollment import tasks
from cadenza.services.enrollment import views as enrollment_views
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.services.sequences import catalog
from tests.ui.engine import run_engine

CALL = {
    "type": "task",
    "task_type": "call",
    "task_title": "Call {{ contact.firstname }}",
    "task_notes": "Ask {{ contact.firstname }} how {{ contact.company }} books demos",
}
FOLLOW_UP = {"type": "email", "delay_days": 3, "subject": "After our call", "body": "<p>Hi</p>"}
STEPS = {
    "call": [CALL, FOLLOW_UP],
    "linkedin": [{"type": "task", "task_type": "linkedin", "task_title": "Connect on LinkedIn"}],
    "todo": [{"type": "task", "task_type": "todo", "task_title": "Research the account"}],
    "manual": [{"type": "manual_email", "subject": "Hello {{ contact.firstname }}",
                "body": "<p>Hello {{ contact.firstname }}, a note from me.</p>"}],
}  # fmt: skip


def _setup(ctx, demo):
    """Five contacts, each enrolled so that one task of theirs is due now, in this order:
    a call (Quinn), a LinkedIn touch, a to-do, a manual email, another call."""
    sequences = {
        kind: catalog.create_sequence(ctx, demo.user_id, f"Queue {kind}", steps=steps).id
        for kind, steps in STEPS.items()
    }
    enrollments = []
    for n, kind in enumerate(("call", "linkedin", "todo", "manual", "call")):
        contact = contacts.create_contact(
            ctx,
            {"email": f"queue{n}@prospect.example", "firstname": ["Quinn", "Lee", "Toni",
             "Mara", "Cal"][n], "lastname": "Prospect", "company": "Prospect Labs",
             "jobtitle": "Head of Sales", "phone": "+1 415 555 010" + str(n),
             "timezone": "America/Los_Angeles",
             "linkedin_url": f"https://www.linkedin.com/in/queue{n}"},
        )  # fmt: skip
        request = EnrollRequest(
            sequences[kind], demo.user_id, [ContactRequest(contact.id)], mailbox_id=demo.mailbox_id
        )
        [result] = enroll(ctx, request)
        assert result.ok, result
        enrollments.append(result.enrollment_id)
    run_engine(ctx, datetime.now(UTC) + timedelta(minutes=1))
    queue = tasks.list_tasks(ctx, owner_id=demo.user_id)
    assert [t.enrollment_id for t in queue] == enrollments  # the demo's rep had none open
    return queue


def test_a_day_of_tasks_with_the_keyboard_alone(tab, server_ctx, demo):
    queue = _setup(server_ctx, demo)
    sent_before = len(outbox.list_messages(server_ctx, status="sent", limit=500))
    page = tab.page
    tab.login(path="/tasks")
    assert page.locator("#shortcuts").count() == 0  # listed on the task page itself
    page.goto(tab.url("/tasks/start?type=&due="))  # the "Start tasks" link's target

    def at_task(task) -> None:
        page.wait_for_url(f"**/tasks/{task.id}*")

    # 1. Quinn's call: everything needed on the page; logged as a booked meeting.
    at_task(queue[0])
    card = page.locator("#task-contact").inner_text()
    assert "Head of Sales" in card and "Prospect Labs" in card
    assert page.locator("#contact-phone").get_attribute("href") == "tel:+14155550100"
    assert page.locator("#contact-linkedin").get_attribute("href").endswith("/in/queue0")
    assert "America/Los_Angeles" in page.locator("#contact-local-time").inner_text()
    assert "step 1 of 2" in page.locator("#task-sequence").inner_text()
    assert page.locator("#task-notes").inner_text() == "Ask Quinn how Prospect Labs books demos"
    assert "n" in page.locator("#shortcuts").inner_text()
    tab.shot("call")
    page.keyboard.press("6")  # the sixth outcome: meeting booked
    assert page.locator("input[value=meeting_booked]").is_checked()
    page.keyboard.press("d")
    page.keyboard.type("4:05")
    page.keyboard.press("Escape")
    page.keyboard.press("n")
    # 2. The LinkedIn touch: what was done is its outcome.
    at_task(queue[1])
    page.keyboard.press("1")  # connection request
    page.keyboard.press("n")
    # 3. The to-do is skipped.
    at_task(queue[2])
    page.keyboard.press("s")
    # 4. The manual email: its draft, edited and sent.
    at_task(queue[3])
    assert page.locator("#subject").input_value() == "Hello Mara"
    tab.shot("manual-email")
    page.keyboard.press("e")
    page.keyboard.press("Control+a")
    page.keyboard.type("Mara, a quick question")
    page.keyboard.press("Control+Enter")  # send and next, from within the field
    # 5. The last call waits a day: rescheduled, and the queue is done.
    at_task(queue[4])
    page.keyboard.press("r")
    page.wait_for_url("**/tasks?*done=1*")
    assert page.locator("#queue-done").is_visible()

    done = [tasks.get_task(server_ctx, t.id) for t in queue]
    assert [t.status for t in done] == ["completed", "completed", "skipped", "completed", "open"]
    assert (done[0].outcome, done[0].duration_seconds) == ("meeting_booked", 245)
    assert done[1].outcome == "connection_request"
    assert done[4].due_at - queue[4].due_at >= timedelta(days=1)
    ended = enrollment_views.get_enrollment(server_ctx, queue[0].enrollment_id).enrollment
    assert (ended.state, ended.reason) == ("unenrolled", "meeting_booked")

    # The booked meeting is on the enrollment's timeline and on the contact's record.
    page.goto(tab.url(f"/enrollments/{queue[0].enrollment_id}"))
    assert "Meeting booked · 4 min 05 s" in page.locator(".event-task_logged").inner_text()
    page.goto(tab.url(f"/contacts/{queue[0].contact_id}"))
    assert "Meeting booked" in page.locator(".task-logged").inner_text()

    # The engine sends the edited email.
    run_engine(server_ctx, datetime.now(UTC) + timedelta(minutes=2), until_sent=sent_before + 1)
    [email] = outbox.list_messages(server_ctx, contact_id=queue[3].contact_id)
    assert (email.status, email.subject) == ("sent", "Mara, a quick question")
