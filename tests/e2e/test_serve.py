"""`cadenza serve` as a user runs it: health, auth, a clean stop."""

import signal


def test_serves_health_openapi_and_requires_auth(live_server):
    with live_server.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}
        spec = client.get("/openapi.json").json()
        assert "/api/v1/contacts" in spec["paths"]
        denied = client.get("/api/v1/contacts")
        assert denied.status_code == 401
        assert denied.json()["error"]["code"] == "unauthenticated"


def test_stops_cleanly_on_sigterm(live_server):
    live_server.process.send_signal(signal.SIGTERM)
    output = live_server.process.communicate(timeout=60)[0]
    assert live_server.process.returncode == 0, output
    assert "worker" in output and "stopped" in output


def _start(sqlite_template, tmp_path, public_url):
    """`cadenza serve --no-worker` on a free port; returns its URL and its start-up lines."""
    import os
    import shutil

    from tests.e2e.conftest import free_port, start_serve

    database = tmp_path / "serve.db"
    shutil.copy(sqlite_template, database)
    env = {k: v for k, v in os.environ.items() if k != "CADENZA_PUBLIC_URL"}
    env["CADENZA_DATABASE_URL"] = f"sqlite:///{database}"
    if public_url:
        env["CADENZA_PUBLIC_URL"] = public_url
    port = free_port()
    process = start_serve(env, port, "--no-worker")
    process.send_signal(signal.SIGTERM)
    return f"http://127.0.0.1:{port}", process.communicate(timeout=60)[0]


def test_links_follow_the_port_served_when_no_public_url_is_set(sqlite_template, tmp_path):
    url, output = _start(sqlite_template, tmp_path, None)
    assert f"Links in emails start at {url}" in output
    assert "warning" not in output


def test_a_public_url_on_another_port_is_warned_about(sqlite_template, tmp_path):
    url, output = _start(sqlite_template, tmp_path, "http://127.0.0.1:8000")
    assert "Links in emails start at http://127.0.0.1:8000" in output
    assert "warning" in output and f"CADENZA_PUBLIC_URL={url}" in " ".join(output.split())
