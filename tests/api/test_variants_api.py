"""A/B variants over HTTP, on both databases: steps carry their variants, bad variants
are refused with a clear error and nothing written, someone else's sequence cannot be
changed, an enrollment can pin a contact's variant, and the analytics split per variant."""

from __future__ import annotations

from tests.conftest import assert_error, enroll_over_api, run_worker

HI = {"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"}
AB = {**HI, "variants": [{"label": "A"}, {"label": "B", "subject": "Quick question"}],
      "winner_after": 50}  # fmt: skip


def test_variants_round_trip_and_enroll_with_a_pinned_variant(api, world, worker):
    created = api.post("/sequences", json={"name": "A/B", "steps": [AB]})
    assert created.status_code == 201, created.text
    [step] = created.json()["steps"]
    assert step["variants"] == [
        {"label": "A", "subject": None, "body": None},
        {"label": "B", "subject": "Quick question", "body": None},
    ]
    assert step["winner_after"] == 50
    sequence_id = created.json()["id"]
    assert api.get(f"/sequences/{sequence_id}").json()["steps"] == [step]

    ann, bob = world.contact("ann@corp.example"), world.contact("bob@corp.example")
    wrong = [{"contact_id": ann.id, "step_edits": {"1": {"variant": "F"}}}]
    bad = enroll_over_api(api, world, wrong, sequence_id=sequence_id)
    assert_error(bad, 422, "validation_error")
    pinned = [{"contact_id": c.id, "step_edits": {"1": {"variant": "B"}}} for c in (ann, bob)]
    response = enroll_over_api(api, world, pinned, sequence_id=sequence_id)
    assert response.status_code == 200, response.text
    assert all(r["ok"] for r in response.json()["results"]), response.text
    run_worker(api, worker)

    messages = api.get("/messages").json()["results"]
    assert {(m["subject"], m["variant"]) for m in messages} == {("Quick question", "B")}
    [first] = [r for r in response.json()["results"] if r["contact_id"] == ann.id]
    events = api.get(f"/enrollments/{first['enrollment_id']}/events").json()
    assert [e["variant"] for e in events if e["kind"] == "sent"] == ["B"]
    [stats] = api.get(f"/sequences/{sequence_id}/analytics").json()["steps"]
    split = stats["variants"]
    assert [(v["label"], v["sent"]) for v in split["variants"]] == [("A", 0), ("B", 2)]
    assert split["variants"][1]["rates"]["reply_rate"] == 0
    assert split["variants"][1]["reply_rate_interval"][0] == 0
    assert (split["test"], split["p_value"], split["winner"]) == (None, None, None)
    assert split["winner_after"] == 50


BAD = [
    ([{"subject": "Only one"}], "validation_error", "variants"),
    ([{}] * 6, "validation_error", "variants"),
    ([{}, {"label": "C"}], "validation_error", "variants"),
    ([{}, {"body": '<p>{{ "x" | center(10**9) }}</p>'}], "template_limit", "variants.B.body"),
    ([{}, {"subject": "{{ contact.__class__ }}"}], "unsafe_template", "variants.B.subject"),
    ([{}, {"body": "<p>" + "a" * 100_001 + "</p>"}], "template_limit", "variants.B.body"),
]  # fmt: skip


def test_bad_variants_and_someone_elses_steps_are_refused_with_nothing_written(api, world):
    sequence_id = world.sequence.id
    for variants, code, field in BAD:
        steps = [HI, {**HI, "variants": variants}]
        posted = api.post("/sequences", json={"name": "S", "steps": steps})
        error = assert_error(posted, 422, code)
        assert (error["details"]["step"], error["details"]["field"]) == (2, field), variants
        put = api.put(f"/sequences/{sequence_id}", json={"name": "Changed", "steps": steps})
        assert_error(put, 422, code)
    wrong = {**AB, "variants": [{"label": "A", "colour": "red"}, {}]}
    error = assert_error(api.post("/sequences", json={"name": "S", "steps": [wrong]}), 422,
                         "validation_error")  # fmt: skip
    assert "colour" in error["message"]

    body = {"name": "Taken over", "steps": [AB]}
    for role in ("other", "viewer"):
        put = api.put(f"/sequences/{sequence_id}", role=role, json=body)
        assert_error(put, 403, "permission_denied")
    assert [s["id"] for s in api.get("/sequences").json()["results"]] == [sequence_id]
    stored = api.get(f"/sequences/{sequence_id}").json()
    assert stored["name"] == "Follow-up" and all(s["variants"] is None for s in stored["steps"])
