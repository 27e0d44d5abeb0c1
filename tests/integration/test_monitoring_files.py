"""The sample Grafana dashboard and the Prometheus alerting rules in deploy/ name only
metrics that GET /metrics really exposes: a renamed metric fails here, not on a wall
screen that silently goes blank."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from cadenza.web.app import create_app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC = re.compile(r"\bcadenza_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}


@pytest.fixture
def exposed(ctx, world, worker) -> set[str]:
    """Every series name /metrics can show, families without samples yet included."""
    ctx.settings = ctx.settings.model_copy(update={"metrics_token": SecretStr("t" * 32)})
    worker.tick()  # a heartbeat: the worker's families
    client = TestClient(create_app(ctx))
    client.get("/healthz")  # a request: the HTTP families have samples
    text = client.get("/metrics", headers={"Authorization": "Bearer " + "t" * 32}).text
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
    return names


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "cadenza-dashboard.json").read_text())
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 30
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    return [t["expr"] for p in panels for t in p["targets"]]


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    [group] = rules["groups"]
    names = [r["alert"] for r in group["rules"]]
    assert len(set(names)) == len(names)
    for wanted in ("WorkerNotTicking", "UnknownSends", "MailboxDisconnected", "WebhookFailures"):
        assert f"Cadenza{wanted}" in names
    assert all(r["annotations"]["summary"] for r in group["rules"])
    return [r["expr"] for r in group["rules"]]


@pytest.mark.parametrize("source", [dashboard_exprs, alert_exprs])
def test_every_expression_names_exposed_metrics(exposed, source):
    exprs = source()
    assert len(exprs) >= 10
    for expr in exprs:
        named = set(METRIC.findall(expr))
        assert named, f"no Cadenza metric in {expr!r}"
        assert named <= exposed, f"{expr!r} names {sorted(named - exposed)}, not in /metrics"
