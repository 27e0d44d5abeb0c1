"""Who reads /metrics and the health details: the metrics token's holder (and an admin,
for the health details); nobody by default. And every answer carries a request id."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import SecretStr

from cadenza.services.accounts import login_brake
from tests.conftest import assert_error

TOKEN = "metrics-token-for-tests-0123456789"


def with_metrics_token(api) -> None:
    api.ctx.settings = api.ctx.settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_metrics_are_off_without_a_token_configured(api):
    for headers in ({}, bearer(TOKEN), api.headers("admin")):
        assert_error(api.client.get("/metrics", headers=headers), 404, "not_found")


def test_only_the_metrics_token_opens_metrics(api):
    with_metrics_token(api)
    assert_error(api.client.get("/metrics"), 401, "unauthenticated")
    assert_error(api.client.get("/metrics", headers=bearer("x" * 34)), 401, "unauthenticated")
    for role in ("admin", "member"):  # a user's API token is not the metrics token
        assert_error(api.client.get("/metrics", headers=api.headers(role)), 401, "unauthenticated")
    answer = api.client.get("/metrics", headers=bearer(TOKEN))
    assert answer.status_code == 200
    assert "# TYPE cadenza_enrollments gauge" in answer.text
    assert TOKEN not in answer.text


def test_guessing_the_metrics_token_is_braked(api):
    with_metrics_token(api)
    for _ in range(login_brake.ATTEMPTS_ALLOWED):
        assert api.client.get("/metrics", headers=bearer("wrong-guess")).status_code == 401
    assert_error(
        api.client.get("/metrics", headers=bearer("wrong-guess")), 429, "too_many_attempts"
    )
    assert api.client.get("/metrics", headers=bearer(TOKEN)).status_code == 200
    api.ctx.clock.advance(login_brake.WINDOW + timedelta(seconds=1))
    assert api.client.get("/metrics", headers=bearer("wrong-guess")).status_code == 401


@pytest.mark.parametrize("path", ["/readyz", "/healthz"])
def test_health_details_go_to_the_token_holder_and_admins_only(api, worker, path):
    with_metrics_token(api)
    worker.tick()  # a heartbeat
    api.ctx.clock.advance(timedelta(seconds=30))
    plain = {"/readyz": {"status": "ready"}, "/healthz": {"status": "ok"}}[path]
    for headers in ({}, api.headers("member"), api.headers("viewer"), bearer("not-it-at-all")):
        assert api.client.get(path, headers=headers).json() == plain
    for headers in (bearer(TOKEN), api.headers("admin")):
        body = api.client.get(path, headers=headers).json()
        assert body["status"] == plain["status"]
        schema = body["schema"]
        assert schema["up_to_date"] and schema["current"] == schema["head"]
        assert body["worker"]["age_seconds"] == 30
        assert body["worker"]["last_tick_at"].startswith("2026-03-02T09:00:00")
        assert body["worker"]["recent_workers"] == 1


def test_readyz_details_without_any_worker(api):
    body = api.client.get("/readyz", headers=api.headers("admin")).json()
    assert body["worker"] == {"last_tick_at": None, "age_seconds": None, "recent_workers": 0}


def test_every_answer_carries_a_request_id(api):
    mine = api.client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.42"})
    assert mine.headers["x-request-id"] == "lb-7f3a.42"
    fresh = api.client.get("/api/v1/contacts", headers={"X-Request-ID": "<script>" * 20})
    made = fresh.headers["x-request-id"]
    assert len(made) == 32 and made.isalnum()
    another = api.client.get("/nowhere").headers["x-request-id"]
    assert another != made
