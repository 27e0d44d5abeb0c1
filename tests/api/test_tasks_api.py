"""Tasks over HTTP: the queue the worker fills, completing and skipping, whose task is whose."""

from datetime import datetime, timedelta

import pytest

from tests.conftest import MISSING_ID, assert_error, backend_independent, enroll_as
from tests.conftest import run_worker as run

CALL = [
    {
        "type": "task",
        "task_type": "call",
        "task_title": "Call {{ contact.firstname }}",
        "task_notes": "Ask {{ contact.firstname }} about pricing",
        "task_priority": "high",
    }
]
MANUAL = [
    {"type": "manual_email", "subject": "Draft for {{ contact.firstname }}", "body": "<p>Hi</p>"},
    {"type": "email", "delay_days": 3, "thread_with_step": 1, "body": "<p>Bump</p>"},
]
TASK_FIELDS = {"id", "owner_id", "contact_id", "enrollment_id", "type", "title", "notes",
               "priority", "status", "due_at", "draft_subject", "draft_body", "completed_at",
               "created_at", "outcome", "duration_seconds", "outcome_notes",
               "logged_at"}  # fmt: skip


def open_tasks(api, role="member", **params):
    response = api.get("/tasks", role=role, params=params)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_a_task_step_created_by_the_worker_is_in_the_queue(api, worker):
    contact = api.world.contact()
    [enrollment_id] = enroll_as(api, "member", [contact], CALL)
    assert open_tasks(api) == []  # nothing until the worker reaches the step
    run(api, worker)
    [task] = open_tasks(api)
    assert set(task) == TASK_FIELDS
    assert (task["type"], task["title"], task["notes"], task["priority"], task["status"]) == (
        "call", "Call Ann", "Ask Ann about pricing", "high", "open")  # fmt: skip
    assert (task["owner_id"], task["contact_id"], task["enrollment_id"]) == (
        api.users["member"].id, contact.id, enrollment_id)  # fmt: skip
    assert task["completed_at"] is None and task["draft_subject"] is None
    assert datetime.fromisoformat(task["due_at"]) == datetime.fromisoformat("2026-03-02T09:00Z")


def test_complete_and_skip(api, worker):
    enroll_as(api, "member", api.world.contacts(2), CALL)
    run(api, worker)
    first, second = open_tasks(api)
    api.ctx.clock.advance(timedelta(minutes=5))
    completed = api.post(f"/tasks/{first['id']}/complete")
    assert completed.status_code == 200, completed.text
    assert completed.json()["status"] == "completed"
    assert datetime.fromisoformat(completed.json()["completed_at"]) == api.ctx.clock.now()
    skipped = api.post(f"/tasks/{second['id']}/skip")
    assert skipped.status_code == 200, skipped.text
    assert skipped.json()["status"] == "skipped" and skipped.json()["completed_at"]
    assert open_tasks(api) == []
    assert [t["id"] for t in open_tasks(api, status="completed")] == [first["id"]]
    assert [t["id"] for t in open_tasks(api, status="skipped")] == [second["id"]]
    assert open_tasks(api, status="cancelled") == []


def test_a_done_task_cannot_be_done_again(api, worker):
    enroll_as(api, "member", [api.world.contact()], CALL)
    run(api, worker)
    [task] = open_tasks(api)
    assert api.post(f"/tasks/{task['id']}/complete").status_code == 200
    error = assert_error(api.post(f"/tasks/{task['id']}/complete"), 409, "invalid_state")
    assert "completed" in error["message"]
    assert_error(api.post(f"/tasks/{task['id']}/skip"), 409, "invalid_state")


def test_completing_a_manual_email_sends_the_edited_draft(api, worker):
    enroll_as(api, "member", [api.world.contact()], MANUAL)
    run(api, worker)
    [task] = open_tasks(api)
    assert (task["type"], task["draft_subject"]) == ("email", "Draft for Ann")
    assert "Hi" in task["draft_body"]
    assert api.get("/messages").json()["results"] == []  # a draft waits for its rep
    edits = {"subject": "Edited   for Ann", "body": "<p>Edited</p><script>x()</script>"}
    completed = api.post(f"/tasks/{task['id']}/complete", json=edits)
    assert completed.status_code == 200, completed.text
    assert completed.json()["draft_subject"] == "Edited for Ann"
    assert "script" not in completed.json()["draft_body"]
    run(api, worker)
    [message] = api.get("/messages").json()["results"]
    assert (message["status"], message["subject"]) == ("sent", "Edited for Ann")
    assert "Edited" in message["body_html"] and "script" not in message["body_html"]


def test_a_skipped_manual_email_is_never_sent(api, worker):
    enroll_as(api, "member", [api.world.contact()], MANUAL)
    run(api, worker)
    [task] = open_tasks(api)
    assert api.post(f"/tasks/{task['id']}/skip").json()["status"] == "skipped"
    run(api, worker, hours=24 * 7)
    [follow_up] = api.get("/messages").json()["results"]  # the next step goes on regardless
    # the skipped draft ("<p>Hi</p>") never went; a random link token may spell "Hi"
    assert "<p>Bump</p>" in follow_up["body_html"] and "<p>Hi</p>" not in follow_up["body_html"]


@pytest.mark.parametrize(
    ("steps", "body"),
    [
        (CALL, {"subject": "Only emails have one"}),
        (MANUAL, {"subject": "   "}),  # an email needs a subject
        (MANUAL, {"subject": "x", "cc": "boss@corp.example"}),
        (MANUAL, {"subject": "nul \x00 inside"}),
        (MANUAL, {"subject": 5}),
    ],
)
def test_invalid_completions_are_refused_and_leave_the_task_open(api, worker, steps, body):
    enroll_as(api, "member", [api.world.contact()], steps)
    run(api, worker)
    [task] = open_tasks(api)
    assert_error(api.post(f"/tasks/{task['id']}/complete", json=body), 422, "validation_error")
    assert [t["id"] for t in open_tasks(api)] == [task["id"]]


def test_the_queue_is_earliest_due_first_and_pages_with_a_cursor(api, worker):
    clock = api.ctx.clock
    enroll_as(api, "member", api.world.contacts(2, prefix="early"), CALL)  # due together
    clock.advance(timedelta(hours=2))
    enroll_as(api, "member", api.world.contacts(1, prefix="late"), CALL)
    run(api, worker)
    everything = open_tasks(api)
    assert [t["due_at"] for t in everything] == sorted(t["due_at"] for t in everything)
    seen, cursor = [], None
    while True:
        params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        body = api.get("/tasks", params=params).json()
        seen += [t["id"] for t in body["results"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [t["id"] for t in everything] and len(seen) == 3
    two = api.get("/tasks", params={"limit": 2}).json()
    rest = api.get("/tasks", params={"limit": 2, "cursor": two["next_cursor"]}).json()
    assert [t["id"] for t in two["results"] + rest["results"]] == seen
    assert rest["next_cursor"] is None


@backend_independent
@pytest.mark.parametrize(
    "params",
    [
        {"status": "done"},
        {"limit": 0},
        {"limit": 501},
        {"cursor": "abc"},
        {"cursor": "12"},
        {"cursor": "99999999999999999999999.1"},
        {"cursor": "1.99999999999999999999999"},
        {"cursor": "².1"},
        {"cursor": "1." + "9" * 5000},
        {"owner": "me"},
        {"owner": 2**31},
    ],
)
def test_bad_list_parameters_are_422(api, params):
    assert_error(api.get("/tasks", params=params), 422, "validation_error")


def test_members_and_viewers_see_only_their_own_tasks(api, worker):
    enroll_as(api, "member", [api.world.contact("m@corp.example")], CALL)
    enroll_as(api, "other", [api.world.contact("o@corp.example")], CALL)
    run(api, worker)
    member, other = api.users["member"].id, api.users["other"].id
    assert [t["owner_id"] for t in open_tasks(api)] == [member]
    assert [t["owner_id"] for t in open_tasks(api, role="other")] == [other]
    assert [t["owner_id"] for t in open_tasks(api, owner=member)] == [member]
    assert sorted(t["owner_id"] for t in open_tasks(api, role="admin")) == sorted([member, other])
    assert [t["owner_id"] for t in open_tasks(api, role="admin", owner=other)] == [other]
    assert open_tasks(api, role="viewer") == []
    assert_error(api.get("/tasks", params={"owner": other}), 403, "permission_denied")
    denied = api.get("/tasks", role="viewer", params={"owner": member})
    assert_error(denied, 403, "permission_denied")
    assert_error(api.get("/tasks", role=None), 401, "unauthenticated")


def test_someone_elses_task_is_not_found_for_a_member(api, worker):
    enroll_as(api, "other", [api.world.contact()], CALL)
    run(api, worker)
    [task] = open_tasks(api, role="other")
    for action in ("complete", "skip"):
        error = assert_error(api.post(f"/tasks/{task['id']}/{action}"), 404, "not_found")
        missing = assert_error(api.post(f"/tasks/{MISSING_ID}/{action}"), 404, "not_found")
        assert error["message"] == f"task {task['id']} does not exist"  # same as a missing one
        assert missing["message"] == f"task {MISSING_ID} does not exist"
        assert_error(api.post(f"/tasks/{task['id']}/{action}", role="viewer"), 403,
                     "permission_denied")  # fmt: skip
        assert_error(api.post(f"/tasks/{task['id']}/{action}", role=None), 401, "unauthenticated")
    assert [t["status"] for t in open_tasks(api, role="other")] == ["open"]
    done = api.post(f"/tasks/{task['id']}/complete", role="admin")  # admins settle anyone's
    assert done.status_code == 200 and done.json()["status"] == "completed"


@pytest.mark.parametrize("task_id", ["0", "-1", "abc", str(2**31), str(2**64)])
def test_impossible_task_ids_are_422(api, task_id):
    assert_error(api.post(f"/tasks/{task_id}/complete"), 422, "validation_error")
