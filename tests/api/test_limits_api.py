"""Sizes have limits, answered with a clear 4xx and nothing half-written (both databases)."""

from __future__ import annotations

from cadenza.domain.contact_fields import MAX_PROPERTIES, MAX_PROPERTY_CHARS
from cadenza.domain.steps import MAX_STEPS
from cadenza.services.crm.contact_import import MAX_CSV_COLUMNS
from tests.conftest import assert_error


def test_ten_thousand_properties_are_refused(api):
    flood = {f"p{i}": "x" for i in range(10_000)}
    body = {"email": "flood@x.example", "properties": flood}
    error = assert_error(api.post("/contacts", json=body), 422, "validation_error")
    assert f"at most {MAX_PROPERTIES} custom properties" in error["message"]
    assert api.get("/contacts").json()["results"] == []


def test_properties_add_up_to_the_limit_across_changes(api):
    half = {f"a{i}": "x" for i in range(MAX_PROPERTIES // 2 + 1)}
    created = api.post("/contacts", json={"email": "grow@x.example", "properties": half})
    assert created.status_code == 201, created.text
    more = {f"b{i}": "y" for i in range(MAX_PROPERTIES // 2 + 1)}
    path = f"/contacts/{created.json()['id']}"
    assert_error(api.patch(path, json={"properties": more}), 422, "validation_error")
    assert len(api.get(path).json()["properties"]) == MAX_PROPERTIES // 2 + 1


def test_a_huge_property_value_is_refused(api):
    body = {"email": "big@x.example", "properties": {"notes": "x" * (MAX_PROPERTY_CHARS + 1)}}
    assert_error(api.post("/contacts", json=body), 422, "validation_error")


def test_a_csv_with_too_many_columns_is_refused(api):
    header = ",".join(["email", *(f"c{i}" for i in range(MAX_CSV_COLUMNS))])
    csv = (header + "\nann@x.example" + "," * MAX_CSV_COLUMNS + "\n").encode()
    response = api.post("/contacts/import", files={"file": ("c.csv", csv, "text/csv")})
    assert_error(response, 422, "validation_error")
    assert api.get("/contacts").json()["results"] == []


def test_a_sequence_has_a_bounded_number_of_steps(api):
    step = {"type": "task", "task_type": "call", "task_title": "Call"}
    error = assert_error(
        api.post("/sequences", json={"name": "Long", "steps": [step] * (MAX_STEPS + 1)}),
        422,
        "validation_error",
    )
    assert f"at most {MAX_STEPS} steps" in error["message"]
    assert (
        api.post("/sequences", json={"name": "Ok", "steps": [step] * MAX_STEPS}).status_code == 201
    )
