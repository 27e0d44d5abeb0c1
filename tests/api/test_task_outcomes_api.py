"""Logged calls and touches over HTTP: outcomes, durations and notes, the outcomes that
end an enrollment, the queue's filters, rescheduling, and the team's own outcomes."""

import itertools
from datetime import timedelta

from tests.conftest import assert_error, enroll_as, enroll_ids
from tests.conftest import run_worker as run

CALL = [{"type": "task", "task_type": "call", "task_title": "Call {{ contact.firstname }}"},
        {"type": "email", "delay_days": 2, "subject": "After", "body": "<p>After</p>"}]  # fmt: skip
LINKEDIN = [{"type": "task", "task_type": "linkedin", "task_title": "Connect",
             "task_priority": "high"}]  # fmt: skip


def open_tasks(api, role="member", **params):
    response = api.get("/tasks", role=role, params=params)
    assert response.status_code == 200, response.text
    return response.json()["results"]


CONTACTS = itertools.count()


def one_call(api, worker, steps=CALL, role="member"):
    contact = api.world.contact(f"call{next(CONTACTS)}@corp.example")
    [enrollment_id] = enroll_as(api, role, [contact], steps)
    run(api, worker)
    [task] = open_tasks(api, role=role)
    return task, enrollment_id


def test_a_call_is_logged_and_lands_on_the_timelines(api, worker):
    task, enrollment_id = one_call(api, worker)
    api.ctx.clock.advance(timedelta(minutes=7))
    body = {"outcome": "connected", "duration_seconds": 245, "notes": "  Wants a demo  "}
    done = api.post(f"/tasks/{task['id']}/complete", json=body)
    assert done.status_code == 200, done.text
    logged = done.json()
    assert (logged["status"], logged["outcome"], logged["duration_seconds"]) == (
        "completed", "connected", 245)  # fmt: skip
    assert logged["outcome_notes"] == "Wants a demo" and logged["logged_at"]
    assert api.get(f"/enrollments/{enrollment_id}").json()["state"] == "active"  # not ending
    events = api.get(f"/enrollments/{enrollment_id}/events").json()
    [entry] = [e for e in events if e["kind"] == "task_logged"]
    assert (entry["detail"], entry["step_position"]) == ("Connected · 4 min 05 s", 1)


BAD_LOGS = [
    ({"outcome": "inmail"}, "unknown_outcome"),  # a LinkedIn outcome, not a call's
    ({"outcome": "made_up"}, "unknown_outcome"),
    ({"outcome": "connected", "duration_seconds": -1}, "validation_error"),
    ({"duration_seconds": 86_401}, "validation_error"),
    ({"duration_seconds": "60"}, "validation_error"),
    ({"notes": "x" * 10_001}, "validation_error"),
    ({"notes": "x" * 20_001}, "validation_error"),  # refused by the schema already
    ({"outcome": "connected", "notes": "nul \x00"}, "validation_error"),
    ({"outcome": 5}, "validation_error"),
]


def test_bad_logs_are_refused_and_write_nothing(api, worker):
    task, _ = one_call(api, worker)
    for body, code in BAD_LOGS:
        assert_error(api.post(f"/tasks/{task['id']}/complete", json=body), 422, code)
    [still] = open_tasks(api)
    assert (still["id"], still["outcome"], still["logged_at"]) == (task["id"], None, None)


def test_someone_elses_task_is_missing_and_a_viewer_may_not_log(api, worker):
    task, _ = one_call(api, worker, role="other")
    body = {"outcome": "connected"}
    assert_error(api.post(f"/tasks/{task['id']}/complete", json=body), 404, "not_found")
    due = (api.ctx.clock.now() + timedelta(days=1)).isoformat()
    reschedule = api.post(f"/tasks/{task['id']}/reschedule", json={"due_at": due})
    assert_error(reschedule, 404, "not_found")
    viewer = api.post(f"/tasks/{task['id']}/complete", role="viewer", json=body)
    assert_error(viewer, 403, "permission_denied")
    assert open_tasks(api, role="other")[0]["status"] == "open"


def test_ending_outcomes_unenroll_through_the_one_path(api, worker):
    admin = api.post(
        "/task-outcomes",
        role="admin",
        json={"key": "gatekeeper", "label": "Gatekeeper said no", "task_type": "call",
              "ends_enrollment": True},
    )  # fmt: skip
    assert admin.status_code == 201, admin.text
    for outcome, reason in (("meeting_booked", "meeting_booked"), ("gatekeeper", "task_outcome")):
        task, enrollment_id = one_call(api, worker)
        done = api.post(f"/tasks/{task['id']}/complete", json={"outcome": outcome})
        assert done.status_code == 200, done.text
        ended = api.get(f"/enrollments/{enrollment_id}").json()
        assert (ended["state"], ended["reason"]) == ("unenrolled", reason)
        assert outcome in ended["reason_detail"]
        kinds = [e["kind"] for e in api.get(f"/enrollments/{enrollment_id}/events").json()]
        assert kinds[-3:] == ["task_completed", "task_logged", "unenrolled"]
        run(api, worker, hours=24 * 5)  # the email after the call is never sent
        assert api.get("/messages", params={"enrollment_id": enrollment_id}).json()["results"] == []


def test_a_sequence_lists_its_own_ending_outcomes(api, worker):
    settings = {"unenroll_on_outcomes": ["no_answer"]}
    sequence = api.world.make_sequence(steps=CALL, settings=settings, name="own list")
    ids = enroll_ids(api.world, api.world.contacts(2, prefix="own"), sequence)
    run(api, worker)
    first, second = open_tasks(api)
    api.post(f"/tasks/{first['id']}/complete", json={"outcome": "meeting_booked"})
    api.post(f"/tasks/{second['id']}/complete", json={"outcome": "no_answer"})
    states = [api.get(f"/enrollments/{i}").json()["state"] for i in ids]
    assert states == ["active", "unenrolled"]
    refused = api.post(
        "/sequences", json={"name": "bad", "settings": {"unenroll_on_outcomes": ["Bad Key"]}}
    )
    assert_error(refused, 422, "validation_error")


def test_the_queue_filters_and_reschedules(api, worker):
    call, _ = one_call(api, worker)
    enroll_as(api, "member", [api.world.contact("li@corp.example")], LINKEDIN)
    run(api, worker)
    assert [t["type"] for t in open_tasks(api, type="linkedin")] == ["linkedin"]
    assert [t["priority"] for t in open_tasks(api, priority="high")] == ["high"]
    assert len(open_tasks(api, due="today", tz="UTC")) == 2
    assert open_tasks(api, due="upcoming", tz="UTC") == []
    due = api.ctx.clock.now() + timedelta(days=2)
    moved = api.post(f"/tasks/{call['id']}/reschedule", json={"due_at": due.isoformat()})
    assert moved.status_code == 200, moved.text
    assert [t["id"] for t in open_tasks(api, due="upcoming", tz="UTC")] == [call["id"]]
    sequence_id = api.get(f"/enrollments/{call['enrollment_id']}").json()["sequence_id"]
    assert [t["id"] for t in open_tasks(api, sequence=sequence_id)] == [call["id"]]
    assert len(open_tasks(api, sort="local")) == 2
    for params in ({"type": "fax"}, {"due": "soon"}, {"sort": "local", "cursor": "1.1"}):
        assert_error(api.get("/tasks", params=params), 422, "validation_error")
    past = (api.ctx.clock.now() - timedelta(hours=1)).isoformat()
    for bad in ({"due_at": past}, {"due_at": "2026-03-05T09:00:00"}, {"due_at": "soon"}, {}):
        assert_error(api.post(f"/tasks/{call['id']}/reschedule", json=bad), 422, "validation_error")


def test_the_teams_outcomes_are_admins_to_manage(api):
    listed = api.get("/task-outcomes", params={"task_type": "call"}).json()
    assert {o["key"] for o in listed} >= {"connected", "left_voicemail", "no_answer"}
    assert [o["key"] for o in listed if o["ends_enrollment"]] == [
        "meeting_booked", "not_interested"]  # fmt: skip
    made = {"key": "demo_sent", "label": "Demo sent", "task_type": "linkedin"}
    assert_error(api.post("/task-outcomes", json=made), 403, "permission_denied")
    assert_error(api.post("/task-outcomes", role="viewer", json=made), 403, "permission_denied")
    assert api.post("/task-outcomes", role="admin", json=made).status_code == 201
    assert_error(api.post("/task-outcomes", role="admin", json=made), 409, "conflict")
    for bad in (
        {**made, "key": "connected"},  # a built-in key
        {**made, "key": "Bad Key"},
        {**made, "key": "x" * 51},
        {**made, "task_type": "email"},
        {**made, "label": ""},
        {**made, "ends_enrollment": "yes"},
    ):
        response = api.post("/task-outcomes", role="admin", json=bad)
        assert response.status_code in (409, 422), response.text
    changed = api.patch("/task-outcomes/demo_sent", role="admin", json={"ends_enrollment": True})
    assert changed.json()["ends_enrollment"] is True
    assert_error(api.patch("/task-outcomes/connected", role="admin", json={}), 409, "invalid_state")
    assert_error(api.delete("/task-outcomes/nothing_here", role="admin"), 404, "not_found")
    assert_error(api.delete("/task-outcomes/demo_sent"), 403, "permission_denied")
    assert api.delete("/task-outcomes/demo_sent", role="admin").status_code == 204
    assert "demo_sent" not in {o["key"] for o in api.get("/task-outcomes").json()}
