"""`cadenza serve` as operators run it: JSON logs, /metrics behind its token on the main
address and open on the separate metrics listener, the embedded worker's heartbeat."""

from __future__ import annotations

import json
import os
import shutil
import signal

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import free_port, start_serve, wait_for

TOKEN = "e2e-metrics-token-0123456789"


def _gauge(text: str, name: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return None


def test_serve_reports_metrics_and_logs_json(sqlite_template, tmp_path):
    database = tmp_path / "serve.db"
    shutil.copy(sqlite_template, database)
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "CADENZA_DATABASE_URL": f"sqlite:///{database}",
        "CADENZA_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "CADENZA_LOG_FORMAT": "json",
        "CADENZA_METRICS_TOKEN": TOKEN,
        "CADENZA_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
    }
    process = start_serve(env, port, "--poll", "0.2", "--inbox-interval", "0")
    try:
        main = f"http://127.0.0.1:{port}/metrics"
        assert httpx.get(main).status_code == 401
        assert httpx.get(main, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200

        def ticked() -> float | None:
            answer = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
            assert answer.status_code == 200
            age = _gauge(answer.text, "cadenza_worker_last_tick_age_seconds")
            return age is not None and age < 60 and answer.text

        text = wait_for(ticked)
        assert _gauge(text, "cadenza_workers") == 1
        assert 'route="/readyz"' in text  # the main app's requests, seen from the listener
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0]
    assert process.returncode == 0, output
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    loggers = {r["logger"] for r in records}
    assert {"cadenza.worker", "cadenza.http", "uvicorn.error"} <= loggers
    assert any(r.get("worker_id") and "started" in r["message"] for r in records)
    assert TOKEN not in output
