"""Sequences as shared playbooks over HTTP: sharing, folders, clones, sequence templates
and the archived filter (docs/content.md); on both databases."""

from tests.conftest import MISSING_ID, assert_error, backend_independent, enroll_over_api

STEPS = [
    {"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"},
    {"type": "task", "delay_days": 2, "task_type": "call", "task_title": "Call",
     "task_priority": "high", "continue_without_completing": True},
]  # fmt: skip
SETTINGS = {"follow_up_days": "business_days", "holiday_country": "US", "track_opens": True}


def create(api, role="member", **body):
    body.setdefault("name", "Playbook")
    body.setdefault("steps", STEPS)
    response = api.post("/sequences", role=role, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def listed(api, role="member", **params):
    response = api.get("/sequences", role=role, params=params)
    assert response.status_code == 200, response.text
    world_sequence = api.world.sequence.id  # the world's own, there for every test
    return [s["name"] for s in response.json()["results"] if s["id"] != world_sequence]


def test_a_private_sequence_is_its_owners_and_the_admins_only(api, world):
    private = create(api, name="Mine", sharing="private")
    seq = private["id"]
    assert private["sharing"] == "private" and create(api, name="Shared")["sharing"] == "team_use"
    assert listed(api, "other") == ["Shared"] and listed(api, "viewer") == ["Shared"]
    assert listed(api, "admin") == ["Mine", "Shared"] == listed(api, "member")
    for path in ("", "/stats", "/analytics"):
        assert_error(api.get(f"/sequences/{seq}{path}", role="other"), 404, "sequence_not_found")
        assert_error(api.get(f"/sequences/{seq}{path}", role="viewer"), 404, "sequence_not_found")
        assert api.get(f"/sequences/{seq}{path}", role="admin").status_code == 200
    contact = world.contact("pat@corp.example")
    refused = enroll_over_api(api, world, [contact], role="other", sequence_id=seq,
                              mailbox_id=api.other_mailbox.id)  # fmt: skip
    assert_error(refused, 404, "sequence_not_found")
    for body in ({"sharing": "team_edit"}, {"folder": "Theirs"}, {"is_template": True}):
        assert_error(api.patch(f"/sequences/{seq}", role="other", json=body), 404,
                     "sequence_not_found")  # fmt: skip
    assert_error(api.post(f"/sequences/{seq}/clone", role="other"), 404, "sequence_not_found")
    assert_error(api.delete(f"/sequences/{seq}", role="other"), 404, "sequence_not_found")

    # Shared to use: others see it and enroll from their own mailbox, but do not change it.
    assert api.patch(f"/sequences/{seq}", json={"sharing": "team_use"}).json()["sharing"] == (
        "team_use"
    )
    assert api.get(f"/sequences/{seq}", role="viewer").status_code == 200
    enrolled = enroll_over_api(api, world, [contact], role="other", sequence_id=seq,
                               mailbox_id=api.other_mailbox.id)  # fmt: skip
    assert enrolled.status_code == 200 and enrolled.json()["results"][0]["ok"], enrolled.text
    put = {"name": "Theirs now", "steps": STEPS}
    assert_error(api.put(f"/sequences/{seq}", role="other", json=put), 403, "permission_denied")
    assert_error(api.patch(f"/sequences/{seq}", role="other", json={"folder": "X"}), 403,
                 "permission_denied")  # fmt: skip

    # Shared to edit: members edit and move it; sharing and archiving stay the owner's.
    api.patch(f"/sequences/{seq}", role="admin", json={"sharing": "team_edit"})
    assert api.put(f"/sequences/{seq}", role="other", json=put).status_code == 200
    moved = api.patch(f"/sequences/{seq}", role="other", json={"folder": "Team"})
    assert moved.json()["folder"] == "Team" and moved.json()["owner_id"] == world.user.id
    for body in ({"sharing": "private"}, {"is_template": True}):
        assert_error(api.patch(f"/sequences/{seq}", role="other", json=body), 403,
                     "permission_denied")  # fmt: skip
    assert_error(api.delete(f"/sequences/{seq}", role="other"), 403, "permission_denied")
    assert_error(api.put(f"/sequences/{seq}", role="viewer", json=put), 403, "permission_denied")
    assert api.get(f"/sequences/{seq}").json()["name"] == "Theirs now"


def test_clone_copies_steps_settings_and_folder_into_a_private_sequence(api, world):
    source = create(api, name="Inbound", settings=SETTINGS, folder="Q3")
    response = api.post(f"/sequences/{source['id']}/clone", role="other")
    assert response.status_code == 201, response.text
    copy = response.json()
    assert copy["id"] != source["id"] and copy["name"] == "Copy of Inbound"
    assert copy["owner_id"] == api.users["other"].id and copy["sharing"] == "private"
    assert copy["folder"] == "Q3" and copy["is_template"] is False and not copy["archived"]
    assert copy["settings"] == source["settings"] and copy["steps"] == source["steps"]
    assert "Copy of Inbound" not in listed(api)  # private: the member does not see it
    named = api.post(f"/sequences/{copy['id']}/clone", role="other",
                     json={"name": "Outbound", "folder": None}).json()  # fmt: skip
    assert (named["name"], named["folder"], named["steps"]) == ("Outbound", None, source["steps"])

    # Save as template: offered to everyone (a private one becomes team_use) to clone.
    template = api.patch(f"/sequences/{copy['id']}", role="other", json={"is_template": True})
    assert template.json()["is_template"] and template.json()["sharing"] == "team_use"
    assert listed(api, templates="true") == ["Copy of Inbound"]
    from_template = api.post(f"/sequences/{copy['id']}/clone", json={"name": "Mine"}).json()
    assert from_template["owner_id"] == world.user.id and from_template["steps"] == source["steps"]


def test_folders_filter_rename_and_the_archived_filter(api):
    a = create(api, name="A", folder="Outbound")
    create(api, name="B", folder="Outbound", sharing="private")
    create(api, name="C")
    create(api, name="D", role="other", folder="Outbound")
    assert listed(api, folder="Outbound") == ["A", "B", "D"]
    assert listed(api, folder="") == ["C"]  # in no folder
    assert listed(api, "other", folder="Outbound") == ["A", "D"]
    assert listed(api, shared="private") == ["B"]
    folders = api.get("/sequence-folders", role="other").json()
    assert folders == [{"name": "Outbound", "sequences": 2}]
    # The folder holds sequences the member may not edit: renamed on all or none.
    refused = api.patch("/sequence-folders/Outbound", json={"name": "Out"})
    assert_error(refused, 403, "permission_denied")
    assert listed(api, folder="Outbound") == ["A", "B", "D"]
    renamed = api.patch("/sequence-folders/Outbound", role="admin", json={"name": " Out  2 "})
    assert renamed.json() == {"name": "Out 2", "renamed": 3}
    assert listed(api, folder="Out 2") == ["A", "B", "D"]
    assert_error(api.patch("/sequence-folders/Nope", json={"name": "X"}), 404, "not_found")

    # Archived: out of the live list, under the archived filter, page and stats kept.
    assert api.delete(f"/sequences/{a['id']}").status_code == 204
    assert "A" not in listed(api) and listed(api, archived="true", folder="Out 2") == ["A"]
    assert api.get(f"/sequences/{a['id']}/analytics").status_code == 200
    unarchived = api.post(f"/sequences/{a['id']}/unarchive")
    assert unarchived.status_code == 200 and not unarchived.json()["archived"]
    assert "A" in listed(api) and listed(api, archived="true") == []


BAD_INPUT = [
    ("PATCH", "/sequences/{id}", {"folder": "a/b"}, 422),
    ("PATCH", "/sequences/{id}", {"folder": "bell\x07"}, 422),
    ("PATCH", "/sequences/{id}", {"folder": "x" * 101}, 422),
    ("PATCH", "/sequences/{id}", {"sharing": "public"}, 422),
    ("PATCH", "/sequences/{id}", {}, 422),
    ("PATCH", "/sequences/{id}", {"owner_id": 1}, 422),
    ("PATCH", f"/sequences/{MISSING_ID}", {"sharing": "private"}, 404),
    ("POST", "/sequences/{id}/clone", {"name": "x" * 201}, 422),
    ("POST", "/sequences/{id}/clone", {"folder": "<script>"}, 422),
    ("POST", f"/sequences/{MISSING_ID}/clone", {}, 404),
    ("POST", "/sequences", {"name": "N", "folder": "\x00"}, 422),
    ("POST", "/sequences", {"name": "N", "sharing": "everyone"}, 422),
    ("PATCH", "/sequence-folders/Q3", {"name": "a/b"}, 422),
    ("GET", "/sequences?folder=" + "x" * 101, None, 422),
    ("GET", "/sequences?shared=public", None, 422),
]


@backend_independent
def test_bad_input_is_refused_and_nothing_changes(api):
    """One sequence for every case (an Api per case would cost seconds each)."""
    made = create(api, folder="Q3")
    wrong = []
    for method, path, body, status in BAD_INPUT:
        response = api.request(method, path.format(id=made["id"]), json=body)
        if response.status_code != status or not response.json()["error"]["message"]:
            wrong.append((method, path, body, response.status_code))
    assert not wrong
    assert api.get(f"/sequences/{made['id']}").json() == made
    assert listed(api) == ["Playbook"]
