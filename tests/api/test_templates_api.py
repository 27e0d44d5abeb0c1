"""The template library and snippets over HTTP, on both databases: CRUD, search and
folders, sharing (another member's private template is not found, a shared one is read
but not changed unless shared to edit), steps using a template by reference or copying
it, preview for a contact, and hostile input refused with nothing written."""

from __future__ import annotations

import pytest

from tests.conftest import MISSING_ID, Api, World, assert_error

GREETING = {
    "name": "Intro",
    "subject": "Hello {{ contact.firstname }}",
    "body": "<p>Hi {{ contact.firstname }}, about {{ contact.company | default('you') }}</p>",
    "folder": "Outbound",
}


@pytest.fixture(scope="module")
def api(module_ctx) -> Api:
    """One app, world and team per database: every test makes templates of its own."""
    return Api(module_ctx, World(module_ctx))


def make(api, role="member", **fields):
    response = api.post("/templates", role=role, json={**GREETING, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def names(api, role="member", **params):
    return [t["name"] for t in api.get("/templates", role=role, params=params).json()["results"]]


def test_create_search_change_archive(api):
    created = make(api, name="Pricing follow-up", subject="Our pricing", folder="Pricing")
    assert created["owner_id"] == api.users["member"].id and created["sharing"] == "private"
    assert api.get(f"/templates/{created['id']}").json() == created
    other = make(api, name="Case study", subject="How Acme did it", folder="Proof")
    assert "Pricing follow-up" in names(api, q="PRICING")  # by name or subject, any case
    assert names(api, q="acme did") == ["Case study"]
    assert names(api, folder="Proof") == ["Case study"]
    assert names(api, q="100%_") == []  # LIKE's wildcards are searched as text

    changed = api.patch(
        f"/templates/{created['id']}", json={"subject": "New pricing", "folder": ""}
    ).json()
    assert (changed["subject"], changed["folder"]) == ("New pricing", None)

    archived = api.delete(f"/templates/{other['id']}").json()
    assert archived["archived"] is True
    assert "Case study" not in names(api) and "Case study" in names(api, archived="true")
    refused = api.patch(f"/templates/{other['id']}", json={"name": "x"})
    assert_error(refused, 409, "invalid_state")
    assert api.post(f"/templates/{other['id']}/unarchive").json()["archived"] is False


def test_sharing_decides_who_reads_and_changes(api):
    private = make(api, name="Mine only")
    shared = make(api, name="Team use", sharing="team_use")
    editable = make(api, name="Team edit", sharing="team_edit")
    for path in (f"/templates/{private['id']}", f"/templates/{MISSING_ID}"):
        assert_error(api.get(path, role="other"), 404, "template_not_found")
    assert_error(
        api.patch(f"/templates/{private['id']}", role="other", json={"name": "x"}),
        404,
        "template_not_found",
    )
    seen = names(api, role="other")
    assert "Team use" in seen and "Team edit" in seen and "Mine only" not in seen
    assert "Mine only" in names(api, role="admin")

    assert api.get(f"/templates/{shared['id']}", role="viewer").status_code == 200
    refused = api.patch(f"/templates/{shared['id']}", role="other", json={"name": "Mine now"})
    assert_error(refused, 403, "permission_denied")
    edited = api.patch(f"/templates/{editable['id']}", role="other", json={"subject": "Edited"})
    assert edited.status_code == 200 and edited.json()["subject"] == "Edited"
    # Shared to edit is not shared to re-share, archive, nor to viewers.
    for role, call in (
        ("other", lambda role: api.patch(
            f"/templates/{editable['id']}", role=role, json={"sharing": "private"})),
        ("other", lambda role: api.delete(f"/templates/{editable['id']}", role=role)),
        ("viewer", lambda role: api.patch(
            f"/templates/{editable['id']}", role=role, json={"subject": "V"})),
    ):  # fmt: skip
        assert_error(call(role), 403, "permission_denied")
    assert api.get(f"/templates/{editable['id']}").json()["sharing"] == "team_edit"


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"body": "<p>" + "a" * 100_001 + "</p>"}, 422, "template_limit"),
        ({"subject": '{{ "x" * 10**9 }}'}, 422, "template_limit"),
        ({"body": "<p>{% set s = contact.company * 9000 %}"
                  "{% for a in s %}{% for b in s %}.{% endfor %}{% endfor %}</p>"},
         422, "template_limit"),
        ({"body": "<p>{{ contact.__class__ }}</p>"}, 422, "unsafe_template"),
        ({"subject": "{{ contact.firstname"}, 422, "invalid_template"),
        ({"sharing": "everyone"}, 422, "validation_error"),
        ({"name": ""}, 422, "validation_error"),
        ({"folder": "a\tb"}, 422, "validation_error"),
        ({"body": "<p>x</p>", "extra": 1}, 422, "validation_error"),
    ],
)  # fmt: skip
def test_bad_templates_are_refused_and_nothing_is_written(api, fields, status, code):
    before = names(api, role="admin")
    assert_error(api.post("/templates", json={**GREETING, **fields}), status, code)
    assert names(api, role="admin") == before


def test_oversized_request_is_refused(api):
    huge = "<p>" + "a" * (26 * 1024 * 1024) + "</p>"
    assert_error(api.post("/templates", json={**GREETING, "body": huge}), 413, "body_too_large")


def test_preview_for_a_contact(api):
    template = make(api, name="Preview me")
    ann = api.world.contact("preview-ann@corp.example", firstname="Ann", company="Corp")
    shown = api.post(f"/templates/{template['id']}/preview", json={"contact_id": ann.id}).json()
    assert shown["subject"] == "Hello Ann" and "about Corp" in shown["body_html"]
    nameless = api.world.contact("preview-nobody@corp.example", firstname="")
    shown = api.post(f"/templates/{template['id']}/preview", json={"contact_id": nameless.id})
    assert any("contact.firstname" in problem for problem in shown.json()["problems"])
    refused = api.post(
        f"/templates/{template['id']}/preview", role="other", json={"contact_id": ann.id}
    )
    assert_error(refused, 404, "template_not_found")


def test_steps_use_a_template_by_reference_or_copy(api):
    template = make(api, name="Opener", sharing="team_use")
    steps = [
        {"type": "email", "template_id": template["id"]},
        {"type": "email", "delay_days": 2, "subject": "Copied", "body": template["body"]},
    ]
    made = api.post("/sequences", json={"name": "From templates", "steps": steps})
    assert made.status_code == 201, made.text
    first, second = made.json()["steps"]
    assert (first["template_id"], first["subject"]) == (template["id"], template["subject"])
    assert first["body"] == template["body"] and second["template_id"] is None

    api.patch(f"/templates/{template['id']}", json={"subject": "Edited {{ contact.firstname }}"})
    first, second = api.get(f"/sequences/{made.json()['id']}").json()["steps"]
    assert first["subject"] == "Edited {{ contact.firstname }}" and second["subject"] == "Copied"
    figures = api.get(f"/templates/{template['id']}/figures").json()
    assert figures == {"template_id": template["id"], "used_in_steps": 1, "sent": 0,
                       "opened": 0, "clicked": 0, "replied": 0, "reply_rate": None}  # fmt: skip

    # Another member may use a shared template, never a private one (not found).
    private = make(api, name="Private opener")
    for template_id, status, code in (
        (private["id"], 404, "template_not_found"),
        (MISSING_ID, 404, "template_not_found"),
    ):
        refused = api.post(
            "/sequences",
            role="other",
            json={"name": "Borrowed", "steps": [{"type": "email", "template_id": template_id}]},
        )
        error = assert_error(refused, status, code)
        assert error["details"]["step"] == 1 and error["details"]["field"] == "template_id"
    borrowed = api.post(
        "/sequences",
        role="other",
        json={"name": "Borrowed", "steps": [{"type": "email", "template_id": template["id"]}]},
    )
    assert borrowed.status_code == 201, borrowed.text
    task = [{"type": "task", "task_title": "Call", "template_id": template["id"]}]
    assert_error(api.post("/sequences", json={"name": "T", "steps": task}), 422,
                 "validation_error")  # fmt: skip


def test_snippets(api):
    made = api.post("/snippets", json={"name": "pricing-link", "body": "See our pricing"})
    assert made.status_code == 201, made.text
    snippet = made.json()
    assert_error(
        api.post("/snippets", json={"name": "pricing-link", "body": "again"}), 409, "conflict"
    )
    # The same name is someone else's to take.
    theirs = api.post("/snippets", role="other", json={"name": "pricing-link", "body": "Theirs",
                                                       "sharing": "team_use"})  # fmt: skip
    assert theirs.status_code == 201, theirs.text
    listed = [(s["name"], s["owner_id"]) for s in api.get("/snippets").json()["results"]]
    member, other = api.users["member"].id, api.users["other"].id
    assert listed.index(("pricing-link", member)) < listed.index(("pricing-link", other))
    for bad in ("Pricing", "has space", "#hash", "", "x" * 51, "ünï"):
        assert_error(api.post("/snippets", json={"name": bad, "body": "b"}), 422,
                     "validation_error")  # fmt: skip
    assert_error(
        api.post("/snippets", json={"name": "blowup", "body": '{{ "x" * 10**9 }}'}),
        422,
        "template_limit",
    )
    assert_error(api.get(f"/snippets/{snippet['id']}", role="other"), 404, "snippet_not_found")
    their_id = theirs.json()["id"]
    assert api.get(f"/snippets/{their_id}").status_code == 200
    assert_error(
        api.patch(f"/snippets/{their_id}", json={"body": "mine"}), 403, "permission_denied"
    )
    renamed = api.patch(f"/snippets/{snippet['id']}", json={"name": "pricing", "body": "Price"})
    assert renamed.json()["name"] == "pricing"
    assert api.delete(f"/snippets/{snippet['id']}").status_code == 204
    assert_error(api.get(f"/snippets/{snippet['id']}"), 404, "snippet_not_found")
    assert_error(api.post("/snippets", role="viewer", json={"name": "v", "body": "v"}), 403,
                 "permission_denied")  # fmt: skip
