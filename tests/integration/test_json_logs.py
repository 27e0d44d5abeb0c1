"""JSON logs (CADENZA_LOG_FORMAT=json) of a whole run: every line parses, carries the ids
of what it is about, and no secret appears anywhere — the mailbox password, the webhook
secret, the API tokens and the metrics token of the run are grepped for in every line."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from typer.testing import CliRunner

from cadenza import logs
from cadenza.cli import app as cli_app
from cadenza.engine.webhook_dispatch import WebhookDispatcher
from tests.conftest import Api
from tests.support.smtp_sink import SmtpSink
from tests.support.webhook_receiver import WebhookReceiver

MAILBOX_PASSWORD = "mailbox-pass-Zq81-secret"
METRICS_TOKEN = "metrics-token-Wx42-secret-0123"


@pytest.fixture
def settings(settings):
    """Webhooks may reach the receiver on loopback; /metrics is open to its token."""
    return settings.model_copy(
        update={"outbound_allow": "127.0.0.1", "metrics_token": SecretStr(METRICS_TOKEN)}
    )


@pytest.fixture
def captured():
    """The root logger writes JSON lines into a buffer, at DEBUG, for this test."""
    buffer = io.StringIO()
    logs.configure("json", "DEBUG", stream=buffer)
    yield buffer
    unconfigure()


def unconfigure() -> None:
    """Back to the test run's logging: without our handler, at the default level."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "cadenza"]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)


def test_a_full_run_logs_json_lines_with_ids_and_no_secrets(ctx, world, worker, captured):
    api = Api(ctx, world)
    with SmtpSink(auth={"rep": MAILBOX_PASSWORD}) as sink, WebhookReceiver() as receiver:
        mailbox = api.post("/mailboxes", json={
            "from_email": "rep@corp.example", "transport": "smtp", "smtp_host": sink.host,
            "smtp_port": sink.port, "smtp_security": "none", "smtp_username": "rep",
            "smtp_password": MAILBOX_PASSWORD,
        })  # fmt: skip
        assert mailbox.status_code == 201, mailbox.text
        events = ["enrolled", "step_sent"]
        hook = api.post("/webhooks", role="admin", json={"url": receiver.url, "events": events})
        assert hook.status_code == 201, hook.text
        webhook_secret = hook.json()["secret"]
        contact = api.post("/contacts", json={"email": "ann@corp.example", "firstname": "Ann"})
        enrolled = api.post(
            f"/sequences/{world.sequence.id}/enrollments",
            json={"contacts": [{"contact_id": contact.json()["id"]}],
                  "mailbox_id": mailbox.json()["id"]},
        )  # fmt: skip
        assert enrolled.status_code == 200, enrolled.text
        [result] = enrolled.json()["results"]
        worker.run_until(ctx.clock.now() + timedelta(minutes=5))
        assert len(sink.message_ids()) == 1
        dispatcher = WebhookDispatcher(ctx, metrics=worker.metrics)
        assert dispatcher.tick() == 2
        dispatcher.stop()
        ctx.clock.advance(timedelta(seconds=10))
        worker.tick()  # its heartbeat carries the dispatcher's counts
        headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        scraped = api.client.get("/metrics", headers=headers)
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(scraped.text)
            for s in family.samples
        }
        attempts = (("outcome", "delivered"), ("worker", "test-worker"))
        assert samples[("cadenza_worker_webhook_attempts_total", attempts)] == 2
        assert samples[("cadenza_webhook_deliveries", (("status", "delivered"),))] == 2
        assert api.client.get("/readyz", headers=headers).json()["schema"]["up_to_date"]
        api.client.get("/api/v1/contacts", headers={"Authorization": "Bearer wrong-token"})

    lines = captured.getvalue().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)

    requests = [r for r in records if r["logger"] == "cadenza.http"]
    assert len(requests) == 7 and all(len(r["request_id"]) == 32 for r in requests)
    assert {r["route"] for r in requests} >= {"/api/v1/mailboxes", "/metrics", "/readyz"}
    assert {r["status"] for r in requests} >= {200, 201, 401}

    [sent] = [r for r in records if r["message"].startswith("email handed over")]
    assert sent["worker_id"] == "test-worker" and sent["outcome"] == "sent"
    assert sent["enrollment_id"] == result["enrollment_id"]
    assert sent["mailbox_id"] == mailbox.json()["id"]
    assert sent["step_run_id"] and sent["message_id"]
    [smtp] = [r for r in records if r["message"].startswith("SMTP session open")]
    assert smtp["message_id"] == sent["message_id"]  # logged on the sender thread
    webhook_lines = [r for r in records if r["logger"] == "cadenza.webhooks"]
    assert len(webhook_lines) == 2 and all(r["webhook_delivery_id"] for r in webhook_lines)

    secrets = [MAILBOX_PASSWORD, webhook_secret, METRICS_TOKEN, *api.tokens.values()]
    for line in lines:
        for secret in secrets:
            assert secret not in line, f"a secret in the logs: {line}"


def test_the_commands_log_json_lines_when_configured(database, tmp_path, monkeypatch):
    """`cadenza worker` sets logging up from CADENZA_LOG_FORMAT (cadenza/logs.py)."""
    env = {
        "CADENZA_DATABASE_URL": database.url,
        "CADENZA_KEY_FILE": str(tmp_path / "cli.key"),
        "CADENZA_PUBLIC_URL": "http://127.0.0.1:8000",
        "CADENZA_LOG_FORMAT": "json",
    }
    result = CliRunner().invoke(
        cli_app, ["worker", "--exit-when-idle", "--inbox-interval", "0", "--id", "cli-worker"],
        env=env,
    )  # fmt: skip
    unconfigure()
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stderr.splitlines()]
    messages = {r["message"] for r in records}
    assert {
        "worker cli-worker started",
        "worker cli-worker stopped after handing over 0 emails",
    } <= messages
    assert {r.get("worker_id") for r in records if r["logger"] == "cadenza.worker"} == {
        "cli-worker"
    }
