"""With PROMETHEUS_MULTIPROC_DIR set, /metrics adds up the HTTP requests of every web
process of the host, and only the HTTP families (a worker's counters come through its
heartbeat). Real processes: the mode is chosen when prometheus-client is imported."""

from __future__ import annotations

import os
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

COUNT_ONE_REQUEST = """
from cadenza.engine.metrics import EngineMetrics
from cadenza.web.observability import HttpMetrics
HttpMetrics().requests.labels("GET", "/healthz", "200").inc()
EngineMetrics().handed_over.labels("1").inc()  # a worker's, in the same directory
"""
EXPOSE = """
from prometheus_client import generate_latest
from cadenza.web.observability import HttpMetrics
print(generate_latest(HttpMetrics().exposed()).decode())
"""


def run(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_requests_of_several_processes_add_up(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    run(COUNT_ONE_REQUEST, env)
    run(COUNT_ONE_REQUEST, env)
    families = {f.name: f for f in text_string_to_metric_families(run(EXPOSE, env))}
    assert set(families) <= {"cadenza_http_requests", "cadenza_http_request_duration_seconds"}
    [sample] = families["cadenza_http_requests"].samples
    assert sample.labels == {"method": "GET", "route": "/healthz", "status": "200"}
    assert sample.value == 2
