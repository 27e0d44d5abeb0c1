"""The queue over HTTP, without JavaScript: filters carried from task to task, a call
logged through the form, bad input answered on the page, other reps' tasks hidden, and
the team's outcomes page."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from cadenza.services.accounts.users import create_user
from cadenza.services.enrollment import tasks
from tests.conftest import enroll_ids
from tests.ui.conftest import Ui, set_password

CALL = [{"type": "task", "task_type": "call", "task_title": "Call {{ contact.firstname }}"}]
TODO = [{"type": "task", "task_type": "todo", "task_title": "Research {{ contact.firstname }}"}]
# The pages' own behaviour, on one database: the services under them are checked on both
# (tests/api/test_task_outcomes_api.py, tests/integration/test_tasks_cli.py).
ONE_DATABASE = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


@ONE_DATABASE
def test_the_queue_works_without_javascript(rep, ctx, world, worker):
    calls = world.make_sequence(steps=CALL, name="Calls")
    enroll_ids(world, [world.contact("a@corp.example"), world.contact("b@corp.example")], calls)
    enroll_ids(world, [world.contact("c@corp.example")], world.make_sequence(steps=TODO))
    worker.tick()
    first, second, todo = tasks.list_tasks(ctx, owner_id=world.user.id)

    listed = rep.client.get("/tasks", params={"type": "todo", "due": "bogus"}).text
    assert "Research Ann" in listed and "Call Ann" not in listed  # a bad value is dropped
    start = rep.client.get("/tasks/start?type=call", follow_redirects=False)
    assert unquote(start.headers["location"]) == f"/tasks/{first.id}?q=type=call"
    page = rep.client.get(f"/tasks/{first.id}", params={"q": "type=call"}).text
    assert 'name="q" value="type=call"' in page and 'value="meeting_booked"' in page

    form = {"csrf_token": rep.token, "q": "type=call", "then": "next"}
    for bad, message in (
        ({"outcome": "inmail"}, "is not an outcome of a call task"),
        ({"outcome": "connected", "duration": "-3"}, "duration must be minutes"),
        ({"notes": "x" * 10_001}, "notes must be at most"),
    ):
        refused = rep.client.post(f"/tasks/{first.id}/complete", data={**form, **bad})
        assert refused.status_code == 422 and message in refused.text, refused.text[:300]
    assert tasks.get_task(ctx, first.id).status == "open"

    done = rep.client.post(
        f"/tasks/{first.id}/complete",
        data={**form, "outcome": "no_answer", "duration": "1:30", "notes": "rang out"},
        follow_redirects=False,
    )
    assert unquote(done.headers["location"]) == f"/tasks/{second.id}?q=type=call"  # not the todo
    logged = tasks.get_task(ctx, first.id)
    assert (logged.outcome, logged.duration_seconds, logged.outcome_notes) == (
        "no_answer", 90, "rang out")  # fmt: skip
    moved = rep.client.post(
        f"/tasks/{second.id}/reschedule", data={**form, "by": "week"}, follow_redirects=False
    )
    assert moved.headers["location"] == "/tasks?type=call&done=1"
    assert "No open task left" in rep.client.get(moved.headers["location"]).text
    bad_time = rep.client.post(f"/tasks/{todo.id}/reschedule", data={**form, "at": "noon"})
    assert bad_time.status_code == 422

    set_password(ctx, create_user(ctx, "bea@example.com").id, "pw2")
    bea = Ui(ctx, world).sign_in("bea@example.com", "pw2", "/tasks")
    assert bea.client.get(f"/tasks/{todo.id}").status_code == 404
    stolen = bea.client.post(f"/tasks/{todo.id}/complete", data={"csrf_token": bea.token})
    assert stolen.status_code == 404 and tasks.get_task(ctx, todo.id).status == "open"


@ONE_DATABASE
def test_admins_add_outcomes_on_the_page(rep, ctx, world):
    assert "meeting_booked" in rep.client.get("/tasks/outcomes").text
    form = {"csrf_token": rep.token, "key": "demo_set", "label": "Demo set", "task_type": "call"}
    assert rep.client.post("/tasks/outcomes", data=form).status_code == 403
    set_password(ctx, create_user(ctx, "ada@example.com", role="admin").id, "pw3")
    ada = Ui(ctx, world).sign_in("ada@example.com", "pw3", "/tasks/outcomes")
    form["csrf_token"] = ada.token
    added = ada.client.post("/tasks/outcomes", data={**form, "ends_enrollment": "on"})
    assert added.status_code == 200 and 'data-outcome="demo_set"' in added.text
    again = ada.client.post("/tasks/outcomes", data=form)
    assert again.status_code == 409 and "already exists" in again.text
    bad = ada.client.post("/tasks/outcomes", data={**form, "key": "Bad key"})
    assert bad.status_code == 422
    removed = ada.client.post("/tasks/outcomes/demo_set/delete", data={"csrf_token": ada.token})
    assert removed.status_code == 200 and 'data-outcome="demo_set"' not in removed.text
