"""Where links in emails lead when `cadenza serve` starts (issue 11 item 15)."""

from __future__ import annotations

import pytest

from cadenza.cli.public_url import resolve
from cadenza.config import Settings


def test_unset_public_url_is_where_the_server_listens():
    settings, warnings = resolve(Settings(database_url="sqlite://"), "127.0.0.1", 8080)
    assert settings.public_url == "http://127.0.0.1:8080"
    assert warnings == []


def test_unset_public_url_on_all_interfaces_warns_that_only_this_machine_reaches_it():
    settings, warnings = resolve(Settings(database_url="sqlite://"), "0.0.0.0", 9000)
    assert settings.public_url == "http://127.0.0.1:9000"
    assert len(warnings) == 1 and "CADENZA_PUBLIC_URL is not set" in warnings[0]


@pytest.mark.parametrize(
    ("public", "host", "port"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1", 8080),
        ("http://localhost", "127.0.0.1", 8080),
        ("http://10.0.0.5:8000", "10.0.0.5", 8001),
        ("http://localhost:8000", "0.0.0.0", 8443),
    ],
)
def test_a_public_url_naming_this_machine_on_another_port_warns(public, host, port):
    settings, warnings = resolve(Settings(database_url="sqlite://", public_url=public), host, port)
    assert settings.public_url == public  # what the operator set is kept, but flagged
    assert len(warnings) == 1 and f"listens on port {port}" in warnings[0]


@pytest.mark.parametrize(
    ("public", "host", "port"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1", 8080),
        ("https://sales.example.com", "127.0.0.1", 8080),  # a proxy in front
        ("http://localhost:8080/", "0.0.0.0", 8080),
    ],
)
def test_a_matching_or_proxied_public_url_is_quiet(public, host, port):
    assert resolve(Settings(database_url="sqlite://", public_url=public), host, port)[1] == []
