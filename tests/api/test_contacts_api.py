"""Contacts over HTTP: every route's auth, validation and error codes, on both databases."""

import pytest

from tests.conftest import assert_error


def test_create_read_update_delete(api):
    body = {"email": "Ann@Corp.example", "firstname": "Ann", "timezone": "Europe/Berlin",
            "properties": {"industry": "retail", "seats": 4}}  # fmt: skip
    created = api.post("/contacts", json=body)
    assert created.status_code == 201, created.text
    contact = created.json()
    assert contact["email"] == "Ann@corp.example" and contact["properties"]["seats"] == 4
    assert api.get(f"/contacts/{contact['id']}").json()["firstname"] == "Ann"
    patched = api.patch(f"/contacts/{contact['id']}", json={"lastname": "Lee"})
    assert patched.json()["lastname"] == "Lee" and patched.json()["firstname"] == "Ann"
    assert api.delete(f"/contacts/{contact['id']}").status_code == 204
    assert_error(api.get(f"/contacts/{contact['id']}"), 404, "contact_not_found")


def test_search_and_cursor_pagination(api):
    for name in ["ann", "bob", "anna"]:
        api.post("/contacts", json={"email": f"{name}@x.example", "firstname": name})
    first = api.get("/contacts", params={"q": "ann", "limit": 1}).json()
    assert [c["firstname"] for c in first["results"]] == ["ann"] and first["next_cursor"]
    rest = api.get("/contacts", params={"q": "ann", "limit": 1, "cursor": first["next_cursor"]})
    assert [c["firstname"] for c in rest.json()["results"]] == ["anna"]
    assert rest.json()["next_cursor"] is None
    assert_error(api.get("/contacts", params={"cursor": "xyz"}), 422, "validation_error")
    assert_error(api.get("/contacts", params={"limit": 0}), 422, "validation_error")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"email": "nope"}, 422, "invalid_email"),
        ({"email": "a@x.example", "timezone": "Mars/Phobos"}, 422, "invalid_timezone"),
        ({"email": "a@x.example", "colour": "red"}, 422, "validation_error"),
        ({"email": "a@x.example", "properties": {"tags": ["a"]}}, 422, "validation_error"),
        ("not json", 422, "validation_error"),
    ],
)
def test_bad_input_is_a_clear_4xx(api, body, status, code):
    kwargs = {"content": body} if isinstance(body, str) else {"json": body}
    error = assert_error(api.post("/contacts", **kwargs), status, code)
    assert api.get("/contacts").json()["results"] == []
    assert error["message"]


def test_search_by_custom_property(api):
    api.post("/contacts", json={"email": "a@x.example", "properties": {"plan": "pro", "seats": 5}})
    api.post("/contacts", json={"email": "b@x.example", "properties": {"plan": "free"}})
    found = api.get("/contacts", params={"property": "plan:pro"}).json()["results"]
    assert [c["email"] for c in found] == ["a@x.example"]
    both = api.get("/contacts", params=[("property", "plan:pro"), ("property", "seats:5")])
    assert [c["email"] for c in both.json()["results"]] == ["a@x.example"]
    assert api.get("/contacts", params={"property": "plan:team"}).json()["results"] == []
    assert_error(api.get("/contacts", params={"property": "plan"}), 422, "validation_error")


def test_duplicate_email_conflicts(api):
    api.post("/contacts", json={"email": "a@x.example"})
    assert_error(api.post("/contacts", json={"email": "A@x.example"}), 409, "conflict")


def test_auth_and_roles(api):
    assert_error(api.get("/contacts", role=None), 401, "unauthenticated")
    bad = api.client.get("/api/v1/contacts", headers={"Authorization": "Bearer cdz_wrong"})
    assert_error(bad, 401, "unauthenticated")
    assert api.get("/contacts", role="viewer").status_code == 200
    assert_error(api.post("/contacts", role="viewer", json={"email": "v@x.example"}), 403,
                 "permission_denied")  # fmt: skip


def test_failed_authentication_is_rate_limited_but_a_valid_token_always_works(api):
    guess = {"Authorization": "Bearer guess"}
    for _ in range(10):
        assert_error(api.client.get("/api/v1/contacts", headers=guess), 401, "unauthenticated")
    assert_error(api.client.get("/api/v1/contacts", headers=guess), 429, "too_many_attempts")
    assert api.get("/contacts").status_code == 200  # same address, valid token: served


def test_csv_import_over_http(api):
    csv = b"email,firstname\nann@x.example,Ann\nbroken,Bob\n"
    response = api.post("/contacts/import", files={"file": ("c.csv", csv, "text/csv")})
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 1
    [error] = response.json()["errors"]
    assert (error["line"], error["code"]) == (3, "invalid_email")
    assert error["message"].startswith("'broken' is not a valid email address")  # names the row
    bad = api.post("/contacts/import", files={"file": ("c.csv", b"name\nx\n", "text/csv")})
    assert_error(bad, 422, "missing_header")


def test_oversized_body_is_413(api):
    huge = b"x" * (26 * 1024 * 1024)
    response = api.post("/contacts/import", files={"file": ("c.csv", huge, "text/csv")})
    assert_error(response, 413, "body_too_large")


def test_health_needs_no_auth(api):
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"status": "ready"}


def test_an_oversized_chunked_body_is_413_by_the_bytes_streamed(api):
    """No Content-Length to trust: the limit counts what arrives."""
    from cadenza.web.app import MAX_BODY_BYTES

    def chunks():
        piece = b"x" * (1024 * 1024)
        for _ in range(MAX_BODY_BYTES // len(piece) + 2):
            yield piece

    response = api.client.post(
        "/api/v1/contacts", content=chunks(),
        headers={**api.headers(), "Content-Type": "application/json"},
    )  # fmt: skip
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "body_too_large")
    small = api.client.post(
        "/api/v1/contacts", content=iter([b'{"email": ', b'"chunk@x.example"}']),
        headers={**api.headers(), "Content-Type": "application/json"},
    )  # fmt: skip
    assert small.status_code == 201, small.text
