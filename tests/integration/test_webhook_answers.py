"""Which answers from a webhook's receiver count as delivered: 2xx only.

A 4xx is the receiver refusing the event (a wrong path, an auth problem it will fix):
it is retried like a 5xx, never counted as delivered, and fails after the last try.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from cadenza.domain import webhooks as rules
from cadenza.engine.webhook_dispatch import WebhookDispatcher
from cadenza.services.enrollment import control as enrollment_control
from cadenza.services.events_out import webhooks
from tests.conftest import enroll_ids
from tests.support.webhook_receiver import WebhookReceiver

URL = "https://hooks.example.com/cadenza"


@pytest.fixture
def settings(settings):
    """The receiver listens on loopback, which webhooks may reach only when allow-listed."""
    return settings.model_copy(update={"outbound_allow": "127.0.0.1"})


def one_delivery(ctx, world, url=URL):
    webhook, _ = webhooks.create_webhook(ctx, None, url, ["paused"])
    [eid] = enroll_ids(world, [world.contact()])
    enrollment_control.pause(ctx, eid)
    [(delivery, _)] = webhooks.list_deliveries(ctx, webhook.id, limit=10)
    return webhook, delivery


@pytest.mark.parametrize("code", [200, 201, 202, 204, 299])
def test_a_2xx_answer_delivers(ctx, world, code):
    _, delivery = one_delivery(ctx, world)
    answer = webhooks.record_attempt(ctx, delivery.id, status_code=code, error=None, duration_ms=5)
    assert answer == "delivered"


@pytest.mark.parametrize("code", [199, 302, 400, 404, 429, 499, 503])
def test_any_other_answer_is_retried_then_fails(ctx, world, code):
    webhook, delivery = one_delivery(ctx, world)
    for _ in range(rules.MAX_ATTEMPTS - 1):
        answer = webhooks.record_attempt(
            ctx, delivery.id, status_code=code, error=None, duration_ms=5
        )
        assert answer == "pending"
    last = webhooks.record_attempt(ctx, delivery.id, status_code=code, error=None, duration_ms=5)
    assert last == "failed"
    [(row, attempts)] = webhooks.list_deliveries(ctx, webhook.id, limit=10)
    assert (
        row.delivered_at is None
        and [a.status_code for a in attempts] == [code] * rules.MAX_ATTEMPTS
    )


def test_a_receiver_answering_404_over_http_is_tried_again(ctx, world):
    with WebhookReceiver() as receiver:
        webhook, _ = one_delivery(ctx, world, receiver.url)
        dispatcher = WebhookDispatcher(ctx)
        try:
            receiver.answer(404)
            assert dispatcher.tick() == 1
            [(row, _)] = webhooks.list_deliveries(ctx, webhook.id, limit=10)
            assert (row.status, row.last_status_code) == ("pending", 404)
            ctx.clock.advance(timedelta(minutes=1))
            assert dispatcher.tick() == 1  # the receiver answers 200 now
            [(row, attempts)] = webhooks.list_deliveries(ctx, webhook.id, limit=10)
            assert row.status == "delivered"
            assert [a.status_code for a in attempts] == [404, 200]
        finally:
            dispatcher.stop()
