"""Sequences over HTTP: CRUD, validation, ownership and roles, stats; on both databases."""

from datetime import timedelta

import pytest

from tests.conftest import MISSING_ID, assert_error, backend_independent

STEPS = [
    {"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"},
    {"type": "email", "delay_days": 2, "delay_hours": 4, "thread_with_step": 1,
     "body": "<p>Bump</p>"},
    {"type": "task", "delay_days": 1, "task_type": "call", "task_title": "Call",
     "task_notes": "Ask about {{ contact.company | default('their team') }}",
     "task_priority": "high", "continue_without_completing": True},
]  # fmt: skip
SETTINGS = {
    "follow_up_days": "business_days",
    "holiday_country": "us",
    "send_window": {"start": "08:00", "end": "18:00"},
    "thread_follow_ups": False,
    "unenroll_on_reply": "company",
    "unenroll_on_meeting": False,
    "task_reminders": True,
    "track_opens": True,
    "track_clicks": True,
    "auto_reply_pause_days": 5,
    "unenroll_on_outcomes": ["meeting_booked", "not_interested"],
    "enrollment_rules": {
        "exclusivity": "exclusive",
        "reenrollment": "once",
        "min_days_since_emailed": 3,
    },
}


def create(api, role="member", **body):
    body.setdefault("name", "Inbound")
    body.setdefault("steps", STEPS)
    response = api.post("/sequences", role=role, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def live_ids(api):
    return [s["id"] for s in api.get("/sequences").json()["results"]]


def test_create_read_replace_archive(api, world):
    created = create(api, name="  Inbound  ", settings=SETTINGS)
    assert created["owner_id"] == world.user.id and created["name"] == "Inbound"
    assert created["settings"] == {**SETTINGS, "holiday_country": "US"}
    assert [s["position"] for s in created["steps"]] == [1, 2, 3]
    second, third = created["steps"][1], created["steps"][2]
    assert (second["delay_days"], second["delay_hours"], second["thread_with_step"]) == (2, 4, 1)
    assert second["subject"] is None and second["body"] == "<p>Bump</p>"
    assert (third["task_type"], third["task_priority"], third["subject"]) == ("call", "high", None)
    assert third["continue_without_completing"] is True
    assert created["created_at"] == created["updated_at"] == "2026-03-02T09:00:00Z"
    assert api.get(f"/sequences/{created['id']}").json() == created

    api.ctx.clock.advance(timedelta(hours=1))
    replaced = api.put(
        f"/sequences/{created['id']}",
        json={"name": "Renamed", "steps": [{"type": "task", "task_title": "Research"}]},
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["name"] == "Renamed" and body["updated_at"] == "2026-03-02T10:00:00Z"
    assert [(s["position"], s["type"], s["task_type"]) for s in body["steps"]] == [
        (1, "task", "todo")
    ]
    assert body["settings"]["follow_up_days"] == "every_day"  # a PUT replaces settings too
    assert api.get(f"/sequences/{created['id']}").json() == body

    assert api.delete(f"/sequences/{created['id']}").status_code == 204
    archived = api.get(f"/sequences/{created['id']}").json()
    assert archived["archived"] is True and archived["archived_at"] == "2026-03-02T10:00:00Z"
    assert live_ids(api) == [world.sequence.id]
    assert_error(api.delete(f"/sequences/{created['id']}"), 409, "sequence_archived")
    assert_error(api.delete("/sequences/999999"), 404, "sequence_not_found")


def test_list_pages_by_cursor(api, world):
    ids = [world.sequence.id] + [create(api, name=f"S{i}")["id"] for i in range(2)]
    first = api.get("/sequences", params={"limit": 2}).json()
    assert [s["id"] for s in first["results"]] == ids[:2] and first["next_cursor"]
    rest = api.get("/sequences", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [s["id"] for s in rest["results"]] == ids[2:] and rest["next_cursor"] is None
    assert rest["results"][0]["steps"][0]["subject"] == "Hi {{ contact.firstname }}"
    assert_error(api.get("/sequences", params={"cursor": "abc"}), 422, "validation_error")


def test_bodies_are_sanitised_when_saved(api):
    steps = [
        {"type": "email", "subject": "Hi", "body": '<p onclick="x()">Hi</p><script>1</script>'}
    ]
    assert create(api, steps=steps)["steps"][0]["body"] == "<p>Hi</p>"


@backend_independent
@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"steps": [{"type": "sms", "body": "x"}]}, "validation_error", "body.steps.0.type"),
        ({"steps": [{**STEPS[0], "colour": "red"}]}, "validation_error", "body.steps.0.colour"),
        ({"colour": "red"}, "validation_error", "body.colour"),
        ({"settings": {"follow_up_days": "sometimes"}}, "validation_error", None),
        ({"settings": {"followup_days": "weekdays"}}, "validation_error", None),
        ({"settings": {"follow_up_days": "business_days"}}, "validation_error", None),
        ({"settings": {"holiday_country": "XX"}}, "validation_error", None),
        ({"settings": {"auto_reply_pause_days": 0}}, "validation_error", None),
        ({"settings": {"auto_reply_pause_days": 7.5}}, "validation_error", None),
        ({"settings": {"send_window": {"start": "18:00", "end": "08:00"}}}, "validation_error",
         None),
        ({"settings": {"send_window": {"start": "8 am", "end": "18:00"}}}, "validation_error",
         None),
        ({"steps": [{"type": "email", "subject": "Hi"}]}, "validation_error", None),
        ({"steps": [{"type": "email", "body": "x", "thread_with_step": 2}, STEPS[0]]},
         "validation_error", None),
        ({"steps": [{**STEPS[0], "delay_days": 366}]}, "validation_error", None),
        ({"steps": [{**STEPS[0], "subject": "Hi {{ contact.name"}]}, "invalid_template", None),
        ({"name": ""}, "validation_error", None),
        ({"name": "a\x00b"}, "validation_error", "body.name"),  # PostgreSQL text holds no NUL
        ({"steps": [{**STEPS[0], "body": "<p>\x00</p>"}]}, "validation_error", None),
        ({"steps": "one"}, "validation_error", None),
    ],
)  # fmt: skip
def test_invalid_sequences_are_refused_with_a_clear_422(api, world, body, code, field):
    error = assert_error(api.post("/sequences", json={"name": "S", **body}), 422, code)
    if field:
        assert error["details"][0]["field"] == field
    assert live_ids(api) == [world.sequence.id]
    assert_error(api.put(f"/sequences/{world.sequence.id}", json={"name": "S", **body}), 422, code)
    assert api.get(f"/sequences/{world.sequence.id}").json()["name"] == "Follow-up"


def test_an_unsafe_template_names_its_step_field_and_line(api, world):
    steps = [STEPS[0], {"type": "email", "subject": "Hi", "body": "<p>Hi</p>\n{{ ''.__class__ }}"}]
    error = assert_error(api.post("/sequences", json={"name": "S", "steps": steps}), 422,
                         "unsafe_template")  # fmt: skip
    assert error["details"] == {
        "step": 2,
        "field": "body",
        "line": 2,
        "reason": error["details"]["reason"],
    }
    assert "__class__" in error["details"]["reason"] and "line 2" in error["message"]
    assert live_ids(api) == [world.sequence.id]


def test_only_the_owner_or_an_admin_changes_a_sequence(api, world):
    path = f"/sequences/{world.sequence.id}"
    body = {"name": "Taken over", "steps": STEPS[:1]}
    assert_error(api.put(path, role="other", json=body), 403, "permission_denied")
    assert_error(api.delete(path, role="other"), 403, "permission_denied")
    assert api.get(path).json()["name"] == "Follow-up"
    assert api.get(path, role="other").status_code == 200  # every user reads every sequence
    others = create(api, role="other", name="Olive's")
    assert others["owner_id"] == api.users["other"].id
    assert_error(api.put(f"/sequences/{others['id']}", json=body), 403, "permission_denied")
    assert api.put(path, role="admin", json=body).json()["name"] == "Taken over"
    assert api.delete(f"/sequences/{others['id']}", role="admin").status_code == 204
    assert_error(api.put(f"/sequences/{MISSING_ID}", json=body), 404, "sequence_not_found")


def test_viewers_read_and_anonymous_callers_are_refused(api, world):
    path = f"/sequences/{world.sequence.id}"
    assert api.get(path, role="viewer").status_code == 200
    assert api.get(f"{path}/stats", role="viewer").status_code == 200
    for response in (
        api.post("/sequences", role="viewer", json={"name": "S", "steps": STEPS}),
        api.put(path, role="viewer", json={"name": "S", "steps": STEPS}),
        api.delete(path, role="viewer"),
    ):
        assert_error(response, 403, "permission_denied")
    for response in (
        api.get("/sequences", role=None),
        api.get(path, role=None),
        api.get(f"{path}/stats", role=None),
        api.post("/sequences", role=None, json={"name": "S"}),
        api.put(path, role=None, json={"name": "S"}),
        api.delete(path, role=None),
    ):
        assert_error(response, 401, "unauthenticated")
    assert api.get(path).json()["name"] == "Follow-up"


def test_openapi_documents_the_sequence_shape(api):
    schemas = api.client.get("/openapi.json").json()["components"]["schemas"]

    def values(prop: dict) -> list[str]:  # the enum's own component (domain/enums.py)
        return schemas[prop["$ref"].rpartition("/")[2]]["enum"]

    assert values(schemas["StepIn"]["properties"]["type"]) == ["email", "manual_email", "task"]
    assert schemas["StepIn"]["additionalProperties"] is False
    follow_up = schemas["SettingsIn"]["properties"]["follow_up_days"]
    assert values(follow_up) == ["every_day", "weekdays", "business_days"]
    assert set(schemas["SequenceStatsOut"]["properties"]) >= {"enrolled", "unenrolled", "steps"}


def test_stats_over_http(api, world, worker):
    first, second = world.contacts(2)
    contacts = [{"contact_id": first.id}, {"contact_id": second.id}]
    enrolled = api.post(f"/sequences/{world.sequence.id}/enrollments", json={"contacts": contacts})
    second_id = enrolled.json()["results"][1]["enrollment_id"]
    worker.run_until(api.ctx.clock.now() + timedelta(days=1))
    api.post(f"/enrollments/{second_id}/unenroll", json={"reason": "replied"})
    response = api.get(f"/sequences/{world.sequence.id}/stats")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "enrolled": 2,
        "active": 1,
        "paused": 0,
        "finished": 0,
        "unenrolled": {"total": 1, "by_reason": {"replied": 1}},
        "sent": 2,
        "failed": 0,
        "unknown": 0,
        "steps": [
            {"position": 1, "type": "email", "sent": 2, "failed": 0, "unknown": 0,
             "tasks_completed": 0, "tasks_open": 0},
            {"position": 2, "type": "email", "sent": 0, "failed": 0, "unknown": 0,
             "tasks_completed": 0, "tasks_open": 0},
            {"position": 3, "type": "task", "sent": 0, "failed": 0, "unknown": 0,
             "tasks_completed": 0, "tasks_open": 0},
        ],
    }  # fmt: skip
    assert_error(api.get(f"/sequences/{MISSING_ID}/stats"), 404, "sequence_not_found")


def test_an_archived_sequence_stays_reachable_and_can_be_unarchived(api, world):
    """Issue 11 item 4: its resource, stats and analytics answer; its enrollments run on."""
    from tests.conftest import enroll_ids

    [enrollment_id] = enroll_ids(world, [world.contact()])
    sequence_id = world.sequence.id
    assert api.delete(f"/sequences/{sequence_id}").status_code == 204

    assert api.get(f"/sequences/{sequence_id}").json()["archived"] is True
    assert api.get(f"/sequences/{sequence_id}/stats").json()["active"] == 1
    assert api.get(f"/sequences/{sequence_id}/analytics").status_code == 200
    listed = api.get("/sequences", params={"archived": "true"}).json()["results"]
    assert [s["id"] for s in listed] == [sequence_id]
    assert api.get(f"/enrollments/{enrollment_id}").json()["state"] == "active"

    # Archived means read-only and closed to new contacts, with a way back said plainly.
    other = world.contact("new@corp.example")
    refused = api.post(
        f"/sequences/{sequence_id}/enrollments", json={"contacts": [{"contact_id": other.id}]}
    )
    assert_error(refused, 409, "sequence_archived")
    replaced = api.put(f"/sequences/{sequence_id}", json={"name": "x", "steps": STEPS})
    assert "unarchive" in assert_error(replaced, 409, "sequence_archived")["message"]
    assert_error(api.post(f"/sequences/{sequence_id}/unarchive", role="other"), 403,
                 "permission_denied")  # fmt: skip
    assert_error(api.post(f"/sequences/{sequence_id}/unarchive", role="viewer"), 403,
                 "permission_denied")  # fmt: skip

    back = api.post(f"/sequences/{sequence_id}/unarchive")
    assert back.status_code == 200 and back.json()["archived"] is False
    assert sequence_id in live_ids(api)
    assert api.post(f"/sequences/{sequence_id}/unarchive").status_code == 200  # no change
    assert_error(api.post("/sequences/999999/unarchive"), 404, "sequence_not_found")
