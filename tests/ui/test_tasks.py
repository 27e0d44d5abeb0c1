"""A call task, created by the engine, completed from the queue in the browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cadenza.services.enrollment import tasks
from cadenza.services.enrollment import views as enrollment_views
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.store.models import Contact
from tests.ui.engine import run_engine


def test_a_task_is_completed_from_the_queue(tab, server_ctx, demo):
    # The demo's outbound sequence: an email, then a call two business days later.
    sequence_id = demo.sequence_id("Outbound: VP Sales")
    usman = Contact.lastname == "Usman"  # Hana Usman, of Soylent Energy
    contact = ContactRequest(demo.contact_id(usman, Contact.firstname == "Hana", *demo.reachable()))
    [result] = enroll(server_ctx, EnrollRequest(sequence_id, demo.user_id, [contact]))
    run_engine(server_ctx, datetime.now(UTC) + timedelta(minutes=1), until_sent=1)
    view = enrollment_views.get_enrollment(server_ctx, result.enrollment_id)
    call_due = next(line.due_at for line in view.steps if line.position == 2)
    run_engine(server_ctx, call_due + timedelta(minutes=1))
    [task] = tasks.list_tasks(server_ctx, owner_id=demo.user_id)
    assert task.type == "call"

    page = tab.page
    tab.login(path="/tasks")
    tab.shot("queue")
    item = page.locator(f"li.task[data-task='{task.id}']")
    assert "Call Hana at Soylent Energy" in item.inner_text()
    item.locator("button:text('Complete')").click()
    page.wait_for_url(tab.url("/tasks"))
    assert page.locator(f"li.task[data-task='{task.id}']").count() == 0
    tab.shot("queue-done")
    assert tasks.get_task(server_ctx, task.id).status == "completed"
    steps = enrollment_views.get_enrollment(server_ctx, result.enrollment_id).steps
    assert [line.status for line in steps[:2]] == ["sent", "done"]
