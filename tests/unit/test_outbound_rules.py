"""The address rules for outbound connections, without a network."""

from __future__ import annotations

import pytest

from cadenza.domain.outbound import AllowList, address, mailbox_refusal, webhook_refusal
from cadenza.domain.webhooks import excerpt

NONE = AllowList.parse("")


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("127.0.0.2", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("10.255.0.1", "a private address"),
        ("172.31.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fc00::1", "a private address"),
        ("100.64.1.1", "a private address"),
        ("169.254.1.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("0.0.0.0", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("240.0.0.1", "a private address"),
        ("93.184.216.34", None),
        ("2606:4700::1111", None),
    ],
)
def test_webhooks_reach_only_public_addresses_by_default(ip, reason):
    assert webhook_refusal("h", address(ip), NONE) == reason


def test_the_allow_list_opens_names_suffixes_and_networks_but_never_metadata():
    allow = AllowList.parse("Relay.Local., *.corp.internal, 10.0.0.0/8; [::1]")
    assert webhook_refusal("relay.local", address("127.0.0.1"), allow) is None
    assert webhook_refusal("a.b.corp.internal", address("192.168.0.1"), allow) is None
    assert webhook_refusal("corp.internal", address("192.168.0.1"), allow) == "a private address"
    assert webhook_refusal("x", address("10.9.9.9"), allow) is None
    assert webhook_refusal("x", address("::1"), allow) is None
    assert webhook_refusal("x", address("127.0.0.1"), allow) == "a loopback address"
    everything = AllowList.parse("0.0.0.0/0, ::/0, relay.local")
    assert webhook_refusal("relay.local", address("169.254.169.254"), everything)
    assert allow.has_host("10.1.1.1") and allow.has_host("RELAY.local")
    assert not allow.has_host("11.1.1.1") and not allow.has_host("other.local")


def test_mailboxes_never_reach_metadata_or_link_local_but_may_reach_loopback():
    assert mailbox_refusal(address("169.254.169.254")) == "a cloud metadata address"
    assert mailbox_refusal(address("fe80::1%eth0")) == "a link-local address"
    assert mailbox_refusal(address("127.0.0.1")) is None
    assert mailbox_refusal(address("10.0.0.5")) is None


def test_a_log_excerpt_is_short_single_line_and_redacted():
    text = (
        "Set-Cookie: sid=abcdef123456\r\nAuthorization: Basic dXNlcjpwYXNzd29yZA==\n"
        "see https://user:pw@hooks.example/p?token=t1 api_key=k-1 " + "z" * 500
    )
    line = excerpt(text)
    assert "\n" not in line and "\r" not in line and len(line) <= 201
    for secret in ("abcdef123456", "dXNlcjpwYXNzd29yZA==", "user:pw", "token=t1", "k-1"):
        assert secret not in line
    assert line.startswith("Set-Cookie: [redacted] Authorization: [redacted]")
