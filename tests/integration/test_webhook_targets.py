"""Webhook URLs cannot aim the server inside: loopback, private, link-local and metadata
addresses are refused after resolution (at save and at every delivery) unless an admin
allow-lists them, and a delivery goes to the very address that was checked."""

from __future__ import annotations

import pytest

from cadenza.domain.errors import CadenzaError
from cadenza.engine.webhook_dispatch import WebhookDispatcher
from cadenza.services.enrollment import control as enrollment_control
from cadenza.services.events_out import webhooks
from tests.conftest import enroll_ids
from tests.support.webhook_receiver import WebhookReceiver

INSIDE = [
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://[fd00:ec2::254]/latest/",  # cloud metadata, IPv6
    "http://10.1.2.3/hooks",  # private
    "http://192.168.0.10:8080/hooks",  # private
    "https://172.16.5.4/hooks",  # private
    "http://[::1]:8000/hooks",  # loopback, IPv6
    "http://127.0.0.1:5432/",  # loopback
    "http://[::ffff:127.0.0.1]/hooks",  # loopback spelt as IPv4-mapped IPv6
    "http://localhost:8000/hooks",  # a name resolving to loopback (hosts file)
    "http://169.254.10.20/hooks",  # link-local
    "http://0.0.0.0:8000/hooks",  # unspecified: reaches this host
    "http://100.64.0.7/hooks",  # shared address space (carrier NAT)
]


@pytest.mark.parametrize("url", INSIDE)
def test_a_url_resolving_inside_is_refused_by_default(ctx, world, url):
    with pytest.raises(CadenzaError) as refused:
        webhooks.create_webhook(ctx, None, url, ["paused"])
    assert refused.value.code == "host_not_allowed"
    assert refused.value.details["field"] == "url"
    assert webhooks.list_webhooks(ctx) == []


def test_a_change_of_url_to_the_inside_is_refused(ctx, world):
    hook, _ = webhooks.create_webhook(ctx, None, "https://hooks.invalid/x", ["paused"])
    with pytest.raises(CadenzaError) as refused:
        webhooks.update_webhook(ctx, None, hook.id, {"url": "http://10.0.0.1/"})
    assert refused.value.code == "host_not_allowed"
    assert webhooks.get_webhook(ctx, hook.id).url == "https://hooks.invalid/x"


@pytest.mark.parametrize(
    ("allow", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:9/hooks"),
        ("localhost", "http://localhost:9/hooks"),
        ("10.0.0.0/8", "http://10.20.30.40/hooks"),
        ("::1", "http://[::1]:9/hooks"),
        ("*.corp.internal", "http://hooks.corp.internal/x"),
    ],
)
def test_an_admin_allow_list_opens_a_host_or_network(ctx, world, allow, url):
    ctx.settings = ctx.settings.model_copy(update={"outbound_allow": allow})
    hook, _ = webhooks.create_webhook(ctx, None, url, ["paused"])
    assert hook.url == url


def test_metadata_stays_closed_even_when_its_network_is_allow_listed(ctx, world):
    ctx.settings = ctx.settings.model_copy(update={"outbound_allow": "169.254.0.0/16"})
    with pytest.raises(CadenzaError) as refused:
        webhooks.create_webhook(ctx, None, "http://169.254.169.254/", ["paused"])
    assert refused.value.code == "host_not_allowed"


def _pause_one(ctx, world):
    [eid] = enroll_ids(world, [world.contact()])
    enrollment_control.pause(ctx, eid)


def test_a_name_that_resolves_inside_at_delivery_is_never_connected_to(ctx, world):
    """Saved while it did not resolve; at delivery it answers loopback: refused, logged."""
    with WebhookReceiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        url = f"http://rebind.invalid:{port}/hooks"
        hook, _ = webhooks.create_webhook(ctx, None, url, ["paused"])
        _pause_one(ctx, world)
        dispatcher = WebhookDispatcher(ctx, resolver=lambda host, port: ["127.0.0.1"])
        try:
            assert dispatcher.tick() == 1
        finally:
            dispatcher.stop()
        assert receiver.requests == []
    [(delivery, [attempt])] = webhooks.list_deliveries(ctx, hook.id, limit=10)
    assert delivery.status == "pending" and attempt.status_code is None
    assert attempt.error.startswith("refused: rebind.invalid resolves to a loopback address")


def test_delivery_connects_to_the_checked_address_with_the_original_host(ctx, world):
    """The name is resolved once, by the dispatcher; the request goes to that address and
    carries the name in Host (here the name exists only in the dispatcher's resolver)."""
    ctx.settings = ctx.settings.model_copy(update={"outbound_allow": "hooks.example.test"})
    with WebhookReceiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        url = f"http://hooks.example.test:{port}/hooks?k=1"
        webhooks.create_webhook(ctx, None, url, ["paused"])
        _pause_one(ctx, world)
        asked = []

        def resolver(host, port):
            asked.append(host)
            return ["127.0.0.1"]

        dispatcher = WebhookDispatcher(ctx, resolver=resolver)
        try:
            assert dispatcher.tick() == 1
        finally:
            dispatcher.stop()
        [request] = receiver.wait_for(1)
    assert asked == ["hooks.example.test"]  # once per delivery
    assert request.headers["Host"] == f"hooks.example.test:{port}"
    assert request.path == "/hooks?k=1"


def test_the_delivery_log_keeps_a_short_redacted_excerpt(ctx, world):
    ctx.settings = ctx.settings.model_copy(update={"outbound_allow": "127.0.0.1"})
    with WebhookReceiver() as receiver:
        hook, secret = webhooks.create_webhook(ctx, None, receiver.url, ["paused"])
        receiver.answer(500)
        receiver.body_next(
            f"upstream said: Authorization: Bearer {secret} token=tok_123456 " + "x " * 400
        )
        _pause_one(ctx, world)
        dispatcher = WebhookDispatcher(ctx)
        try:
            assert dispatcher.tick() == 1
        finally:
            dispatcher.stop()
    [(delivery, [attempt])] = webhooks.list_deliveries(ctx, hook.id, limit=10)
    assert attempt.status_code == 500 and delivery.last_status_code == 500
    assert attempt.error.startswith("upstream said: Authorization: [redacted] token=[redacted]")
    assert secret not in attempt.error and "tok_123456" not in attempt.error
    assert len(attempt.error) <= 201
