"""`cadenza serve` as deploy/systemd/cadenza-web.service runs it, behind a proxy on the
same host (docs/deploy.md, "The proxy and TLS").

The proxy terminates TLS and connects from 127.0.0.1: the scheme and client address it
forwards must be believed, or session cookies lose `Secure`, answers lose HSTS and the
failed-login brake counts every client as the proxy. A request without those headers is
plain http, as before.
"""

from __future__ import annotations

import os
import shutil
import signal

import httpx

from tests.e2e.conftest import free_port, start_serve
from tests.unit.test_deploy_units import DEPLOY, exec_argv

CLIENT = "198.51.100.7"  # what nginx appends to X-Forwarded-For: the client's address


def test_the_proxy_on_this_host_is_believed_for_scheme_and_client(sqlite_template, tmp_path):
    argv = exec_argv(DEPLOY / "systemd" / "cadenza-web.service")
    options = argv[argv.index("serve") + 1 : argv.index("--port")]  # the unit's, but its port
    assert options == ["--no-worker", "--host", "127.0.0.1"]
    shutil.copy(sqlite_template, tmp_path / "web.db")
    # Nothing of the caller's: neither Cadenza's settings nor uvicorn's proxy allow-list.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CADENZA_") and k != "FORWARDED_ALLOW_IPS"
    }
    env |= {
        "CADENZA_DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}",
        "CADENZA_PUBLIC_URL": "https://cadenza.corp.example",
        "CADENZA_TRUSTED_PROXIES": "127.0.0.1,::1",
        "CADENZA_KEY_FILE": str(tmp_path / "web.key"),
    }
    port = free_port()
    process = start_serve(env, port, *options)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            forwarded = client.get(
                "/login", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": CLIENT}
            )
            plain = client.get("/login")
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0]
    assert forwarded.status_code == plain.status_code == 200
    assert forwarded.headers["strict-transport-security"].startswith("max-age=")
    assert "secure" in forwarded.headers["set-cookie"].lower().split("; ")
    assert "strict-transport-security" not in plain.headers
    assert "secure" not in plain.headers["set-cookie"].lower().split("; ")
    assert process.returncode == 0, output
    # The request log names the client the proxy forwarded, not the proxy.
    lines = [line for line in output.splitlines() if "GET /login 200" in line]
    assert len(lines) == 2 and f"from {CLIENT} " in lines[0], output
    assert "from 127.0.0.1 " in lines[1]
