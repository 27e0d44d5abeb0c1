"""Webhooks over HTTP: admins only, validation, the secret shown once, the delivery log."""

from __future__ import annotations

import logging

import pytest

from cadenza.domain import webhooks as rules
from cadenza.engine.webhook_dispatch import WebhookDispatcher
from tests.conftest import assert_error, backend_independent
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture
def settings(settings):
    """The receiver listens on loopback, which webhooks may reach only when allow-listed."""
    return settings.model_copy(update={"outbound_allow": "127.0.0.1"})


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


def create(api, url, events=("enrolled",), role="admin"):
    return api.post("/webhooks", json={"url": url, "events": list(events)}, role=role)


def test_admin_creates_and_the_secret_is_shown_once(api, receiver):
    created = create(api, receiver.url, ["enrolled", "replied"])
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["enrolled", "replied"]
    for response in (
        api.get("/webhooks", role="admin"),
        api.get(f"/webhooks/{body['id']}", role="admin"),
    ):
        assert response.status_code == 200
        assert body["secret"] not in response.text and "secret" not in response.text


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_only_admins_manage_webhooks(api, receiver, role):
    assert_error(create(api, receiver.url, role=role), 403, "permission_denied")
    assert_error(api.get("/webhooks", role=role), 403, "permission_denied")
    assert_error(api.get("/webhooks", role=None), 401, "unauthenticated")


@backend_independent
@pytest.mark.parametrize(
    ("url", "events"),
    [
        ("ftp://hooks.example/x", ["enrolled"]),
        ("hooks.example/x", ["enrolled"]),
        ("http:///no-host", ["enrolled"]),
        ("https://hooks.example/" + "a" * rules.MAX_URL, ["enrolled"]),
        ("https://hooks.example/x\x00", ["enrolled"]),
        ("https://hooks.example/x", []),
        ("https://hooks.example/x", ["sent"]),
    ],
)
def test_bad_urls_and_event_types_are_refused_and_nothing_is_written(api, url, events):
    assert_error(create(api, url, events), 422, "validation_error")
    assert api.get("/webhooks", role="admin").json()["results"] == []


def test_change_deactivate_and_delete(api, receiver):
    hook = create(api, receiver.url).json()
    changed = api.patch(
        f"/webhooks/{hook['id']}", json={"events": ["finished"], "active": False}, role="admin"
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["finished"] and changed.json()["active"] is False
    assert_error(
        api.patch(f"/webhooks/{hook['id']}", json={"url": "mailto:x@y"}, role="admin"),
        422,
        "validation_error",
    )
    assert api.delete(f"/webhooks/{hook['id']}", role="admin").status_code == 204
    assert_error(api.get(f"/webhooks/{hook['id']}", role="admin"), 404, "not_found")
    assert_error(api.delete(f"/webhooks/{hook['id']}", role="admin"), 404, "not_found")


def test_test_ping_is_delivered_signed_and_logged(api, receiver, caplog):
    hook = create(api, receiver.url).json()
    queued = api.post(f"/webhooks/{hook['id']}/test", role="admin")
    assert queued.status_code == 202 and queued.json()["status"] == "pending"
    dispatcher = WebhookDispatcher(api.ctx)
    with caplog.at_level(logging.DEBUG):
        assert dispatcher.tick() == 1
    dispatcher.stop()
    [request] = receiver.wait_for(1)
    now = int(api.ctx.clock.now().timestamp())
    assert request.headers["Cadenza-Event"] == "ping"
    assert rules.verify(hook["secret"], request.headers["Cadenza-Signature"], request.body, now)
    assert hook["secret"] not in caplog.text
    log = api.get(f"/webhooks/{hook['id']}/deliveries", role="admin").json()
    [delivery] = log["results"]
    assert delivery["status"] == "delivered" and delivery["event_type"] == "ping"
    assert [a["status_code"] for a in delivery["attempt_log"]] == [200]


def test_delivery_log_pages_newest_first(api, receiver):
    hook = create(api, receiver.url).json()
    ids = [api.post(f"/webhooks/{hook['id']}/test", role="admin").json()["id"] for _ in range(3)]
    first = api.get(f"/webhooks/{hook['id']}/deliveries?limit=2", role="admin").json()
    assert [d["id"] for d in first["results"]] == ids[::-1][:2]
    rest = api.get(
        f"/webhooks/{hook['id']}/deliveries?limit=2&cursor={first['next_cursor']}", role="admin"
    ).json()
    assert [d["id"] for d in rest["results"]] == ids[:1] and rest["next_cursor"] is None
    assert_error(
        api.get(f"/webhooks/{hook['id']}/deliveries?cursor=zz", role="admin"),
        422,
        "validation_error",
    )
