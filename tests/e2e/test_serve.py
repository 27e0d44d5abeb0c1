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
