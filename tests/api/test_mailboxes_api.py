"""Mailboxes over HTTP: ownership, roles, validation, deletion rules and connection tests.

Every response of every test here is searched for the SMTP password (and so are the
logs and the audit trail): the password is write-only, whatever the route or the error.
"""

import json
import logging
import socket
from datetime import timedelta

import pytest
from sqlalchemy import select

from cadenza.services.enrollment.control import pause, unenroll
from cadenza.store.models import AuditEntry
from tests.conftest import MISSING_ID, assert_error, backend_independent, enroll_ids
from tests.support.smtp_sink import SmtpSink

PASSWORD = "pw-Zq81-never-shown"

OUTPUT_FIELDS = {
    "id", "owner_id", "from_email", "from_name", "transport", "smtp_host", "smtp_port",
    "smtp_security", "smtp_username", "has_password", "per_minute_limit", "daily_limit",
    "connected", "disconnected_reason", "auth_method", "oauth_provider", "created_at",
    "imap_host", "imap_port", "imap_security", "imap_username", "has_imap_password",
}  # fmt: skip


class WatchedApi:
    """The conftest Api, keeping every response so the test can be searched for leaks."""

    def __init__(self, api) -> None:
        self._api = api
        self.responses = []

    def __getattr__(self, name):
        attribute = getattr(self._api, name)
        if name not in ("get", "post", "patch", "put", "delete", "request"):
            return attribute

        def call(*args, **kwargs):
            response = attribute(*args, **kwargs)
            self.responses.append(response)
            return response

        return call


@pytest.fixture
def api(api, ctx, caplog):
    caplog.set_level(logging.DEBUG, logger="cadenza")
    watched = WatchedApi(api)
    yield watched
    assert watched.responses, "a test that calls nothing proves nothing"
    for response in watched.responses:
        where = f"{response.request.method} {response.request.url} → {response.status_code}"
        assert PASSWORD not in response.text, where
        assert PASSWORD not in str(response.headers), where
    assert PASSWORD not in caplog.text
    with ctx.db.transaction() as session:
        audit = [json.dumps(e.data) for e in session.scalars(select(AuditEntry))]
    assert not [entry for entry in audit if PASSWORD in entry]


@pytest.fixture
def sink():
    # Two logins with the same password: switching username is a real credential change.
    with SmtpSink(auth={"rep": PASSWORD, "rep2": PASSWORD}) as server:
        yield server


def smtp_body(sink, **changes):
    body = {
        "from_email": "rep@corp.example",
        "from_name": "Riley",
        "transport": "smtp",
        "smtp_host": sink.host,
        "smtp_port": sink.port,
        "smtp_security": "none",
        "smtp_username": "rep",
        "smtp_password": PASSWORD,
    }
    return {**body, **changes}


def create(api, body, role="member"):
    response = api.post("/mailboxes", json=body, role=role)
    assert response.status_code == 201, response.text
    return response.json()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def disconnected(api, world, ctx, sink, worker):
    """The member's SMTP mailbox after the server really refused its login; an email waits."""
    mailbox = create(api, smtp_body(sink))
    sink.fail_next("AUTH", "535 5.7.8 authentication credentials invalid")
    enroll_ids(world, [world.contact()], mailbox_id=mailbox["id"])
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    mailbox = api.get(f"/mailboxes/{mailbox['id']}").json()
    assert mailbox["connected"] is False and "535" in mailbox["disconnected_reason"]
    assert sink.messages == []
    return mailbox


# --- create, read, list ---------------------------------------------------------------


def test_create_read_update_delete(api, world):
    created = create(api, {"from_email": "Sam@Corp.example", "from_name": "Sam"})
    assert set(created) == OUTPUT_FIELDS
    assert created["owner_id"] == world.user.id and created["from_email"] == "Sam@corp.example"
    assert created["transport"] == "capture" and created["smtp_security"] == "starttls"
    assert (created["per_minute_limit"], created["daily_limit"]) == (10, 1000)
    assert created["connected"] is True and created["has_password"] is False
    path = f"/mailboxes/{created['id']}"
    assert api.get(path).json() == created
    patched = api.patch(path, json={"from_name": "Samantha", "daily_limit": 500})
    assert patched.status_code == 200, patched.text
    assert patched.json() == {**created, "from_name": "Samantha", "daily_limit": 500}
    assert api.delete(path).status_code == 204
    assert_error(api.get(path), 404, "mailbox_not_found")


def test_imap_settings_keep_their_password_write_only(api):
    created = create(api, {"from_email": "sam@corp.example", "imap_host": "localhost"})
    assert created["imap_security"] == "tls" and created["has_imap_password"] is False
    path = f"/mailboxes/{created['id']}"
    body = {"imap_port": 143, "imap_security": "starttls", "imap_username": "sam",
            "imap_password": PASSWORD}  # fmt: skip
    patched = api.patch(path, json=body).json()
    assert patched["has_imap_password"] is True and "imap_password" not in patched
    assert (patched["imap_port"], patched["imap_security"]) == (143, "starttls")
    assert api.patch(path, json={"imap_password": None}).json()["has_imap_password"] is False
    assert_error(api.patch(path, json={"imap_security": "ssl"}), 422, "validation_error")
    assert_error(api.patch(path, json={"imap_security": None}), 422, "validation_error")
    assert_error(api.patch(path, json={"imap_port": 0}), 422, "validation_error")


def test_smtp_mailbox_keeps_its_password_write_only(api, sink):
    created = create(api, smtp_body(sink, per_minute_limit=30, daily_limit=2000))
    assert created["has_password"] is True and "smtp_password" not in created
    assert created["smtp_host"] == sink.host and created["smtp_port"] == sink.port
    assert created["smtp_username"] == "rep" and created["per_minute_limit"] == 30
    path = f"/mailboxes/{created['id']}"
    assert api.get(path).json()["has_password"] is True
    cleared = api.patch(path, json={"smtp_password": None}).json()
    assert cleared["has_password"] is False
    assert api.patch(path, json={"smtp_password": PASSWORD}).json()["has_password"] is True
    assert api.post(f"/mailboxes/{created['id']}/test").json()["ok"] is True


def test_list_shows_members_their_own_and_admins_all(api, world):
    mine = create(api, {"from_email": "second@corp.example"})
    other = api.other_mailbox
    listed = api.get("/mailboxes").json()
    assert listed["next_cursor"] is None
    assert [m["id"] for m in listed["results"]] == [world.mailbox.id, mine["id"]]
    everything = api.get("/mailboxes", role="admin").json()["results"]
    assert {world.mailbox.id, mine["id"], other.id} == {m["id"] for m in everything}
    assert api.get("/mailboxes", role="viewer").json() == {"results": [], "next_cursor": None}
    viewers = create(api, {"from_email": "v@corp.example", "owner_id": api.users["viewer"].id},
                     role="admin")  # fmt: skip
    assert [m["id"] for m in api.get("/mailboxes", role="viewer").json()["results"]] == [
        viewers["id"]
    ]
    assert api.get(f"/mailboxes/{viewers['id']}", role="viewer").status_code == 200


def test_only_admins_create_for_someone_else(api, world):
    other_id = api.users["other"].id
    for_other = create(api, {"from_email": "o2@corp.example", "owner_id": other_id}, role="admin")
    assert for_other["owner_id"] == other_id
    assert_error(api.get(f"/mailboxes/{for_other['id']}"), 404, "mailbox_not_found")
    assert api.get(f"/mailboxes/{for_other['id']}", role="other").status_code == 200
    own = create(api, {"from_email": "me2@corp.example", "owner_id": world.user.id})
    assert own["owner_id"] == world.user.id
    refused = api.post("/mailboxes", json={"from_email": "x@corp.example", "owner_id": other_id})
    assert_error(refused, 403, "permission_denied")
    missing = api.post("/mailboxes", role="admin",
                       json={"from_email": "x@corp.example", "owner_id": MISSING_ID})  # fmt: skip
    assert_error(missing, 404, "user_not_found")
    assert len(api.get("/mailboxes", role="other").json()["results"]) == 2


# --- validation ---------------------------------------------------------------------------


@backend_independent
@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"transport": "carrier-pigeon"}, "validation_error"),
        ({"transport": "smtp"}, "validation_error"),
        ({"transport": "smtp", "smtp_host": ""}, "validation_error"),
        ({"smtp_security": "ssl"}, "validation_error"),
        ({"smtp_port": 0}, "validation_error"),
        ({"smtp_port": 65536}, "validation_error"),
        ({"per_minute_limit": 0}, "validation_error"),
        ({"per_minute_limit": 100_001}, "validation_error"),
        ({"daily_limit": 0}, "validation_error"),
        ({"daily_limit": 10_000_001}, "validation_error"),
        ({"per_minute_limit": "10"}, "validation_error"),
        ({"colour": "red"}, "validation_error"),
        ({"from_email": "not-an-email"}, "invalid_email"),
        ({"from_email": None}, "validation_error"),
        ({"from_name": "x" * 201}, "validation_error"),
        ({"smtp_password": PASSWORD + "x" * 500}, "validation_error"),
        ({"smtp_password": PASSWORD + "\x00"}, "validation_error"),  # PostgreSQL cannot store it
        ({"from_name": "Ann\x00"}, "validation_error"),
        ({"owner_id": 2**31}, "validation_error"),
    ],
)
def test_bad_input_to_create_is_a_422(api, world, changes, code):
    body = {"from_email": "new@corp.example", "smtp_password": PASSWORD, **changes}
    error = assert_error(api.post("/mailboxes", json=body), 422, code)
    assert error["message"]
    assert [m["id"] for m in api.get("/mailboxes").json()["results"]] == [world.mailbox.id]


def test_a_body_that_is_not_json_is_a_422(api):
    assert_error(api.post("/mailboxes", content="not json"), 422, "validation_error")


@pytest.mark.parametrize("mailbox_id", [0, 2**31, 10**30])
def test_an_id_no_mailbox_can_have_is_a_422(api, mailbox_id):
    assert_error(api.get(f"/mailboxes/{mailbox_id}"), 422, "validation_error")


@backend_independent
@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"transport": "smtp"}, "validation_error"),  # a capture mailbox has no host
        ({"transport": "pigeon"}, "validation_error"),
        ({"smtp_security": "ssl"}, "validation_error"),
        ({"per_minute_limit": 0}, "validation_error"),
        ({"daily_limit": 10_000_001}, "validation_error"),
        ({"from_email": "nope"}, "invalid_email"),
        ({"from_email": None}, "validation_error"),
        ({"transport": None}, "validation_error"),
        ({"daily_limit": None}, "validation_error"),
        ({"owner_id": 1}, "validation_error"),  # the owner never changes
        ({"colour": "red"}, "validation_error"),
    ],
)
def test_bad_input_to_update_is_a_422_and_changes_nothing(api, world, changes, code):
    path = f"/mailboxes/{world.mailbox.id}"
    before = api.get(path).json()
    body = {"smtp_password": PASSWORD, "from_name": "Changed", **changes}
    assert_error(api.patch(path, json=body), 422, code)
    assert api.get(path).json() == before


def test_an_smtp_mailbox_cannot_lose_its_host(api, sink):
    mailbox = create(api, smtp_body(sink))
    path = f"/mailboxes/{mailbox['id']}"
    assert_error(api.patch(path, json={"smtp_host": None}), 422, "validation_error")
    assert_error(api.patch(path, json={"smtp_host": ""}), 422, "validation_error")
    switched = api.patch(path, json={"transport": "capture", "smtp_host": None})
    assert switched.status_code == 200, switched.text
    assert switched.json()["transport"] == "capture" and switched.json()["smtp_host"] is None


def test_switching_a_capture_mailbox_to_smtp(api, world, sink):
    path = f"/mailboxes/{world.mailbox.id}"
    body = smtp_body(sink)
    del body["from_email"], body["from_name"]
    switched = api.patch(path, json=body)
    assert switched.status_code == 200, switched.text
    mailbox = switched.json()
    assert mailbox["transport"] == "smtp" and mailbox["has_password"] is True
    assert mailbox["from_name"] == "Riley" and mailbox["from_email"] == "rep@example.com"
    assert api.post(f"{path}/test").json() == {"ok": True, "code": 250, "reply": "OK"}


# --- roles and ownership --------------------------------------------------------------------

ID_ROUTES = [
    ("get", "", None),
    ("patch", "", {"from_name": "Taken", "smtp_password": PASSWORD}),
    ("delete", "", None),
    ("post", "/test", None),
    ("post", "/reconnect", {"smtp_password": PASSWORD}),
]
WRITE_ROUTES = [route for route in ID_ROUTES if route[0] != "get"]


def call(api, route, mailbox_id, role):
    method, suffix, body = route
    kwargs = {} if body is None else {"json": body}
    return getattr(api, method)(f"/mailboxes/{mailbox_id}{suffix}", role=role, **kwargs)


@pytest.mark.parametrize("route", ID_ROUTES, ids=lambda r: f"{r[0]}{r[1]}")
def test_no_token_is_a_401(api, world, route):
    assert_error(call(api, route, world.mailbox.id, None), 401, "unauthenticated")


def test_no_token_is_a_401_for_list_and_create(api):
    assert_error(api.get("/mailboxes", role=None), 401, "unauthenticated")
    body = {"from_email": "x@corp.example", "smtp_password": PASSWORD}
    assert_error(api.post("/mailboxes", role=None, json=body), 401, "unauthenticated")


@pytest.mark.parametrize("route", WRITE_ROUTES, ids=lambda r: f"{r[0]}{r[1]}")
def test_viewers_never_write_even_their_own(api, route):
    mailbox = create(api, {"from_email": "v@corp.example", "owner_id": api.users["viewer"].id},
                     role="admin")  # fmt: skip
    assert_error(call(api, route, mailbox["id"], "viewer"), 403, "permission_denied")
    assert api.get(f"/mailboxes/{mailbox['id']}", role="viewer").json() == mailbox


def test_viewers_cannot_create(api):
    body = {"from_email": "v@corp.example", "smtp_password": PASSWORD}
    assert_error(api.post("/mailboxes", role="viewer", json=body), 403, "permission_denied")
    assert api.get("/mailboxes", role="viewer").json()["results"] == []


@pytest.mark.parametrize("route", ID_ROUTES, ids=lambda r: f"{r[0]}{r[1]}")
def test_someone_elses_mailbox_looks_missing(api, route):
    theirs = api.other_mailbox.id
    before = api.get(f"/mailboxes/{theirs}", role="other").json()
    hidden = assert_error(call(api, route, theirs, "member"), 404, "mailbox_not_found")
    missing = assert_error(call(api, route, MISSING_ID, "member"), 404, "mailbox_not_found")
    assert hidden["message"].replace(str(theirs), "N") == missing["message"].replace(
        str(MISSING_ID), "N"
    )
    assert api.get(f"/mailboxes/{theirs}", role="other").json() == before


def test_viewers_cannot_read_someone_elses(api):
    theirs = api.other_mailbox.id
    assert_error(api.get(f"/mailboxes/{theirs}", role="viewer"), 404, "mailbox_not_found")


def test_admins_manage_everyones_mailboxes(api):
    path = f"/mailboxes/{api.other_mailbox.id}"
    assert api.get(path, role="admin").json()["owner_id"] == api.users["other"].id
    patched = api.patch(path, role="admin", json={"from_name": "Olive O.", "per_minute_limit": 5})
    assert patched.status_code == 200, patched.text
    assert patched.json()["from_name"] == "Olive O." and patched.json()["per_minute_limit"] == 5
    assert patched.json()["owner_id"] == api.users["other"].id
    assert api.post(f"{path}/test", role="admin").json()["ok"] is True
    reconnected = api.post(f"{path}/reconnect", role="admin", json={"smtp_password": PASSWORD})
    assert reconnected.status_code == 200 and reconnected.json()["has_password"] is True
    assert api.delete(path, role="admin").status_code == 204
    assert api.get("/mailboxes", role="other").json()["results"] == []


# --- delete ---------------------------------------------------------------------------------


def test_delete_is_refused_while_enrollments_send_from_it(api, world, ctx):
    path = f"/mailboxes/{world.mailbox.id}"
    [enrollment_id] = enroll_ids(world, [world.contact()])
    live = assert_error(api.delete(path), 409, "invalid_state")
    assert "live enrollment" in live["message"] and live["details"] == {"live_enrollments": 1}
    pause(ctx, enrollment_id)
    assert_error(api.delete(path), 409, "invalid_state")
    unenroll(ctx, enrollment_id)
    # Ended enrollments still point at the mailbox: their history is kept, not orphaned.
    history = assert_error(api.delete(path, role="admin"), 409, "invalid_state")
    assert "history" in history["message"]
    assert api.get(path).status_code == 200


def test_delete_of_an_unused_mailbox_and_of_a_missing_one(api, world):
    spare = create(api, {"from_email": "spare@corp.example"})
    assert api.delete(f"/mailboxes/{spare['id']}").status_code == 204
    assert [m["id"] for m in api.get("/mailboxes").json()["results"]] == [world.mailbox.id]
    assert_error(api.delete(f"/mailboxes/{spare['id']}"), 404, "mailbox_not_found")


# --- connection test --------------------------------------------------------------------------


def test_capture_mailboxes_always_pass(api, world):
    response = api.post(f"/mailboxes/{world.mailbox.id}/test")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "ok": True,
        "code": 250,
        "reply": "capture transport: nothing to connect to",
    }


def test_smtp_test_logs_in_and_sends_nothing(api, sink):
    mailbox = create(api, smtp_body(sink))
    sink.reset()
    result = api.post(f"/mailboxes/{mailbox['id']}/test").json()
    assert result["ok"] is True and result["code"] == 250
    assert sink.connections == 1 and sink.messages == []
    assert api.get(f"/mailboxes/{mailbox['id']}").json() == mailbox


def test_smtp_test_reports_a_refused_login(api, sink):
    mailbox = create(api, smtp_body(sink))
    sink.fail_next("AUTH", "535 5.7.8 bad credentials")
    result = api.post(f"/mailboxes/{mailbox['id']}/test").json()
    assert result == {"ok": False, "code": 535, "reply": "5.7.8 bad credentials"}
    # A test only reports: the mailbox stays connected, its emails are not held back.
    assert api.get(f"/mailboxes/{mailbox['id']}").json() == mailbox


def test_smtp_test_with_a_wrong_password(api, sink):
    mailbox = create(api, smtp_body(sink, smtp_password="not-" + PASSWORD[:4]))
    result = api.post(f"/mailboxes/{mailbox['id']}/test").json()
    assert result["ok"] is False and result["code"] == 535 and result["reply"]


def test_smtp_test_against_a_closed_port(api, sink):
    mailbox = create(api, smtp_body(sink, smtp_port=closed_port()))
    result = api.post(f"/mailboxes/{mailbox['id']}/test").json()
    assert result["ok"] is False and result["code"] is None
    assert result["reply"].startswith("connect")


def test_a_test_does_not_reconnect_a_disconnected_mailbox(api, disconnected):
    path = f"/mailboxes/{disconnected['id']}"
    assert api.post(f"{path}/test").json()["ok"] is True
    assert api.get(path).json() == disconnected


# --- reconnect and re-marking connected -------------------------------------------------------


def test_reconnect_lets_the_waiting_email_go(api, ctx, sink, worker, disconnected):
    path = f"/mailboxes/{disconnected['id']}"
    assert_error(api.post(f"{path}/reconnect", json={"password": PASSWORD}), 422,
                 "validation_error")  # fmt: skip
    response = api.post(f"{path}/reconnect")
    assert response.status_code == 200, response.text
    assert response.json() == {**disconnected, "connected": True, "disconnected_reason": None}
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    assert len(sink.messages) == 1


@pytest.mark.parametrize(
    "move", [{"smtp_username": "rep2"}, {"smtp_host": "localhost"}, {"smtp_port": 2526}]
)
def test_moving_to_another_server_or_account_clears_the_password(api, disconnected, move):
    """The password was given for one account on one server: never replayed to another."""
    path = f"/mailboxes/{disconnected['id']}"
    assert api.get(path).json()["has_password"] is True
    assert api.patch(path, json=move).json()["has_password"] is False


def test_reconnect_with_a_new_password(api, disconnected):
    path = f"/mailboxes/{disconnected['id']}"
    api.patch(path, json={"smtp_password": None})
    response = api.post(f"{path}/reconnect", json={"smtp_password": PASSWORD})
    assert response.json()["connected"] is True and response.json()["has_password"] is True
    assert api.post(f"{path}/test").json()["ok"] is True


def test_changing_other_fields_leaves_it_disconnected(api, sink, disconnected):
    path = f"/mailboxes/{disconnected['id']}"
    renamed = api.patch(path, json={"from_name": "R. Rep", "daily_limit": 50}).json()
    assert renamed["connected"] is False and renamed["disconnected_reason"]
    unchanged = api.patch(path, json={"smtp_host": sink.host, "smtp_username": "rep"}).json()
    assert unchanged["connected"] is False


@pytest.mark.parametrize(
    "changes",
    [
        # a new server or account clears the stored password: it is given again with it
        {"smtp_username": "rep2", "smtp_password": PASSWORD},
        {"smtp_password": PASSWORD + "-new"},
        {"smtp_host": "localhost", "smtp_password": PASSWORD},
    ],
    ids=["username", "password", "host"],
)
def test_changing_credentials_or_host_reconnects(api, ctx, sink, worker, disconnected, changes):
    path = f"/mailboxes/{disconnected['id']}"
    response = api.patch(path, json=changes)
    assert response.status_code == 200, response.text
    assert response.json()["connected"] is True
    assert response.json()["disconnected_reason"] is None
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    if changes["smtp_password"] != PASSWORD:  # the server knows only the old one: refused
        assert api.get(path).json()["connected"] is False and sink.messages == []
    else:
        assert len(sink.messages) == 1
