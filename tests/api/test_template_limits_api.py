"""Template limits over HTTP: a template that runs past a limit with sample values is
refused at save with 422 template_limit, naming its step, field and line; nothing is
written (both databases)."""

from __future__ import annotations

import pytest

from tests.conftest import assert_error

HI = {"type": "email", "subject": "Hi", "body": "<p>Hello</p>"}


@pytest.mark.parametrize(
    ("step", "field", "fragment"),
    [
        ({**HI, "body": '<p>{{ "x" | center(10**9) }}</p>'}, "body", "center's width"),
        ({**HI, "subject": '{{ "x" * 10**9 }}'}, "subject", "the result of *"),
        ({**HI, "body": '<p>{{ "%999999999s" | format(1) }}</p>'}, "body", "% format"),
        ({**HI, "body": '<p>{{ "ab" | replace("a", "b", 10**9) }}</p>'}, "body", "count"),
        ({**HI, "body": '<p>{{ contact.email | wordwrap(10**9) }}</p>'}, "body", "wordwrap"),
        (
            {**HI, "body": "<p>{% set s = contact.company * 9000 %}"
                           "{% for a in s %}{% for b in s %}.{% endfor %}{% endfor %}</p>"},
            "body",
            "loops would run",
        ),
        ({**HI, "body": "<p>" + "{{ (" * 200 + "1" + ") }}" * 200 + "</p>"}, "body", "nests"),
        ({**HI, "body": "<p>" + "a" * 100_001 + "</p>"}, "body", "characters long"),
        (
            {"type": "task", "task_title": "Call", "task_notes": '{{ "y" | indent(10**8) }}'},
            "task_notes",
            "indent's width",
        ),
    ],
)  # fmt: skip
def test_a_template_past_a_limit_is_refused_at_save(api, world, step, field, fragment):
    steps = [HI, step]
    error = assert_error(
        api.post("/sequences", json={"name": "S", "steps": steps}), 422, "template_limit"
    )
    assert error["details"]["step"] == 2 and error["details"]["field"] == field
    assert fragment in error["details"]["reason"]
    assert error["message"].startswith(f"step 2: Template limit reached in {field}")
    assert [s["id"] for s in api.get("/sequences").json()["results"]] == [world.sequence.id]
    put = api.put(f"/sequences/{world.sequence.id}", json={"name": "Changed", "steps": steps})
    assert_error(put, 422, "template_limit")
    assert api.get(f"/sequences/{world.sequence.id}").json()["name"] == "Follow-up"
