"""Records, associations, lists and automation through the HTTP API, on both databases."""

from tests.conftest import MISSING_ID, assert_error


def company(api, name="Acme", contacts=(), role="member", **properties):
    response = api.post(
        "/companies",
        role=role,
        json={
            "name": name,
            "properties": properties,
            "associations": [{"contact_id": c, "primary": i == 0} for i, c in enumerate(contacts)],
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_records_crud_on_builtin_and_custom_types(api, world):
    ann = world.contact("ann@corp.example")
    acme = company(api, "Acme", [ann.id], industry="Software", employees="1,200")
    assert acme["type"] == "company" and acme["properties"] == {
        "industry": "Software", "employees": 1200,
    }  # fmt: skip
    assert acme["associations"] == [{"contact_id": ann.id, "primary": True}]
    assert api.get(f"/objects/company/{acme['id']}").json()["name"] == "Acme"
    assert api.get(f"/objects/companies/{acme['id']}").json()["name"] == "Acme"
    assert_error(api.get(f"/deals/{acme['id']}"), 404, "not_found")
    patched = api.patch(f"/companies/{acme['id']}", json={"properties": {"industry": None}})
    assert patched.json()["properties"] == {"employees": 1200}
    found = api.get("/companies", params={"q": "acm", "limit": 1}).json()
    assert [r["id"] for r in found["results"]] == [acme["id"]] and found["next_cursor"] is None
    by_contact = api.get("/companies", params={"contact_id": ann.id}).json()["results"]
    assert [r["id"] for r in by_contact] == [acme["id"]]

    hull = {"name": "hull", "type": "enum", "options": ["wood", "steel"]}
    boat = {"name": "boat", "plural": "boats", "properties": [hull]}
    assert_error(api.post("/object-types", json=boat), 403, "permission_denied")  # a member
    assert api.post("/object-types", role="admin", json=boat).status_code == 201
    assert_error(api.post("/object-types", role="admin", json=boat), 409, "conflict")
    made = api.post("/objects/boats", json={"name": "Aurora", "properties": {"hull": "wood"}})
    assert made.status_code == 201 and made.json()["type"] == "boat"
    bad = api.post("/objects/boat", json={"name": "X", "properties": {"hull": "glass"}})
    assert "hull" in assert_error(bad, 422, "validation_error")["message"]
    assert_error(api.post("/objects/boat", json={"name": "X", "colour": "red"}), 422,
                 "validation_error")  # fmt: skip
    assert_error(api.get("/objects/planets"), 404, "not_found")
    assert_error(api.post("/deals", role="viewer", json={"name": "X"}), 403, "permission_denied")
    assert_error(api.get("/deals", role=None), 401, "unauthenticated")
    assert api.delete(f"/objects/boat/{made.json()['id']}").status_code == 204
    assert api.delete("/object-types/boat", role="admin").status_code == 204
    assert_error(api.delete("/object-types/deal", role="admin"), 409, "invalid_state")


def test_associations_api(api, world):
    ann, bob = world.contact("ann@corp.example"), world.contact("bob@corp.example")
    deal = api.post("/deals", json={"name": "Big", "properties": {"amount": 5000}}).json()
    linked = api.post("/associations", json={"record_id": deal["id"], "contact_id": bob.id,
                                             "primary": True})  # fmt: skip
    assert linked.status_code == 201 and linked.json()["record_type"] == "deal"
    api.post("/associations", json={"record_id": deal["id"], "contact_id": ann.id})
    listed = api.get("/associations", params={"record_id": deal["id"], "limit": 1}).json()
    assert len(listed["results"]) == 1 and listed["next_cursor"]
    assert_error(api.get("/associations"), 422, "validation_error")
    assert_error(
        api.post("/associations", json={"record_id": deal["id"], "contact_id": MISSING_ID}),
        404, "contact_not_found",
    )  # fmt: skip
    params = {"record_id": deal["id"], "contact_id": ann.id}
    assert api.delete("/associations", params=params).status_code == 204
    assert_error(api.delete("/associations", params=params), 404, "not_found")


def test_enroll_from_a_company_choosing_one_of_two_contacts(api, world):
    ann, bob = world.contact("ann@corp.example"), world.contact("bob@corp.example")
    acme = company(api, "Acme", [ann.id, bob.id])
    empty = company(api, "Empty")
    path = f"/sequences/{world.sequence.id}/enrollments"
    none = api.post(path, json={"record_type": "company", "record_id": empty["id"]})
    assert_error(none, 422, "no_associated_contact")
    ask = api.post(path, json={"record_type": "company", "record_id": acme["id"]})
    error = assert_error(ask, 422, "associated_contact_required")
    assert [c["email"] for c in error["details"]["contacts"]] == [
        "ann@corp.example", "bob@corp.example",
    ]  # fmt: skip
    chosen = api.post(path, json={"record_type": "company", "record_id": acme["id"],
                                  "contacts": [{"contact_id": bob.id}]})  # fmt: skip
    [result] = chosen.json()["results"]
    assert chosen.status_code == 200 and result["ok"], chosen.text
    enrollment = api.get(f"/enrollments/{result['enrollment_id']}").json()
    assert enrollment["source_record_id"] == acme["id"]
    shown = api.get(f"/companies/{acme['id']}").json()["enrollments"]
    assert [(e["contact_id"], e["state"]) for e in shown] == [(bob.id, "active")]
    half = api.post(path, json={"record_type": "company"})
    assert_error(half, 422, "validation_error")
    assert_error(api.post(path, json={"record_type": "company", "record_id": acme["id"]},
                          role="viewer"), 403, "permission_denied")  # fmt: skip


def test_lists_api_and_whole_list_enrollment_job(api, world, worker):
    people = world.contacts(3)
    static = api.post("/lists", json={"name": "Picked", "kind": "static"}).json()
    added = api.post(f"/lists/{static['id']}/members",
                     json={"contact_ids": [p.id for p in people]})  # fmt: skip
    assert added.json() == {"added": 3, "removed": 0, "size": 3}
    members = api.get(f"/lists/{static['id']}/members", params={"limit": 2}).json()
    assert len(members["results"]) == 2 and members["next_cursor"]
    assert_error(api.post(f"/lists/{static['id']}/members", json={"contact_ids": [MISSING_ID]}),
                 404, "contact_not_found")  # fmt: skip
    active = api.post("/lists", json={
        "name": "Ann", "kind": "active",
        "filters": {"all": [{"property": "firstname", "op": "equals", "value": "ann"}]},
    }).json()  # fmt: skip
    assert active["size"] == 3
    assert_error(api.post("/lists", json={"name": "x", "kind": "active", "filters": {"all": []}}),
                 422, "validation_error")  # fmt: skip
    assert_error(api.post(f"/lists/{active['id']}/members", json={"contact_ids": [people[0].id]}),
                 409, "invalid_state")  # fmt: skip
    assert_error(api.post("/lists", role="viewer", json={"name": "x", "kind": "static"}),
                 403, "permission_denied")  # fmt: skip

    started = api.post(f"/lists/{static['id']}/enrollments",
                       json={"sequence_id": world.sequence.id})  # fmt: skip
    assert started.status_code == 202, started.text
    job = started.json()
    assert (job["status"], job["total"], job["processed"]) == ("running", 3, 0)
    worker.tick()
    done = api.get(f"/list-enrollments/{job['id']}").json()
    assert (done["status"], done["processed"], done["enrolled"], done["refused"]) == (
        "done", 3, 3, 0,
    )  # fmt: skip
    assert_error(api.get(f"/list-enrollments/{job['id']}", role="other"), 404, "not_found")
    assert api.get(f"/list-enrollments/{job['id']}", role="admin").status_code == 200
    refused = api.post(
        f"/lists/{static['id']}/enrollments",
        role="other",
        json={"sequence_id": world.sequence.id, "mailbox_id": world.mailbox.id},
    )
    assert_error(refused, 403, "mailbox_not_yours")  # fmt: skip
    assert api.delete(f"/lists/{static['id']}").status_code == 204


def test_automation_rules_api_admin_only_with_run_log(api, world, worker):
    body = {
        "name": "Welcome", "sequence_id": world.sequence.id,
        "trigger": {"type": "contact_created"},
        "action": {"type": "enroll", "user_id": world.user.id},
    }  # fmt: skip
    assert_error(api.post("/automation/rules", json=body), 403, "permission_denied")
    assert_error(
        api.post("/automation/rules", role="admin", json={**body, "trigger": {"type": "never"}}),
        422,
        "validation_error",
    )
    rule = api.post("/automation/rules", role="admin", json=body)
    assert rule.status_code == 201, rule.text
    rule_id = rule.json()["id"]
    created = api.post("/contacts", json={"email": "new@corp.example", "firstname": "New"}).json()
    worker.tick()
    runs = api.get(f"/automation/rules/{rule_id}/runs").json()["results"]
    assert [(r["contact_id"], r["outcome"], r["code"]) for r in runs] == [
        (created["id"], "enrolled", None)
    ]
    off = api.patch(f"/automation/rules/{rule_id}", role="admin", json={"enabled": False})
    assert off.json()["enabled"] is False
    assert_error(api.patch(f"/automation/rules/{rule_id}", json={"enabled": True}), 403,
                 "permission_denied")  # fmt: skip
    listed = api.get("/automation/rules", params={"sequence_id": world.sequence.id}).json()
    assert [r["id"] for r in listed["results"]] == [rule_id]
    assert api.delete(f"/automation/rules/{rule_id}", role="admin").status_code == 204
    assert_error(api.get(f"/automation/rules/{rule_id}"), 404, "not_found")
