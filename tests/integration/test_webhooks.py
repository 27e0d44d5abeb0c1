"""Webhooks out, delivered over real HTTP to a receiver on loopback."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from cadenza.domain import webhooks as rules
from cadenza.domain.clock import SystemClock
from cadenza.engine.webhook_dispatch import WebhookDispatcher
from cadenza.engine.worker import Worker
from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.context import Context
from cadenza.services.enrollment import control as enrollment_control
from cadenza.services.events_out import webhooks
from cadenza.store.models import WebhookDelivery
from tests.conftest import enroll_ids
from tests.support.smtp_sink import SmtpSink
from tests.support.webhook_receiver import WebhookReceiver

ONE_STEP = [{"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"}]


@pytest.fixture
def settings(settings):
    """The receiver listens on loopback, which webhooks may reach only when allow-listed."""
    return settings.model_copy(update={"outbound_allow": "127.0.0.1"})


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def dispatcher(ctx):
    hooks = WebhookDispatcher(ctx)
    yield hooks
    hooks.stop()


def subscribe(world, receiver, events):
    return webhooks.create_webhook(world.ctx, None, receiver.url, events)


def events_of(requests) -> list[dict]:
    return [json.loads(r.body) for r in requests]


def test_a_sequence_run_reports_enrolled_sent_finished_signed(
    ctx, world, worker, receiver, dispatcher
):
    _, secret = subscribe(world, receiver, ["enrolled", "step_sent", "finished"])
    world.sequence = world.make_sequence(steps=ONE_STEP, name="One")
    contact = world.contact()
    [eid] = enroll_ids(world, [contact])
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    assert dispatcher.tick() == 3

    received = receiver.wait_for(3)
    assert [e["type"] for e in events_of(received)] == ["enrolled", "step_sent", "finished"]
    for request, event in zip(received, events_of(received), strict=True):
        assert event["data"]["enrollment_id"] == eid
        assert event["data"]["contact_id"] == contact.id
        assert request.headers["Cadenza-Event"] == event["type"]
        assert request.headers["Cadenza-Delivery"] == event["id"]
        now = int(ctx.clock.now().timestamp())
        assert rules.verify(secret, request.headers[rules.SIGNATURE_HEADER], request.body, now)
        assert not rules.verify(
            "whsec_wrong", request.headers[rules.SIGNATURE_HEADER], request.body, now
        )
        assert not rules.verify(
            secret, request.headers[rules.SIGNATURE_HEADER], request.body + b" ", now
        )
    assert events_of(received)[1]["data"]["step_position"] == 1
    assert dispatcher.tick() == 0  # delivered once each


def test_only_subscribed_events_of_active_webhooks_are_delivered(ctx, world, receiver, dispatcher):
    subscribe(world, receiver, ["replied"])
    muted, _ = subscribe(world, receiver, ["unenrolled"])
    webhooks.update_webhook(ctx, None, muted.id, {"active": False})
    [eid] = enroll_ids(world, [world.contact()])
    enrollment_control.unenroll(ctx, eid, "replied", detail="Sounds good, call me")
    assert dispatcher.tick() == 1
    [event] = events_of(receiver.wait_for(1))
    assert event["type"] == "replied"
    assert event["data"]["reason"] == "replied" and event["data"]["state"] == "unenrolled"


def test_retries_with_backoff_and_logs_every_answer(ctx, world, receiver, dispatcher):
    webhook, _ = subscribe(world, receiver, ["paused"])
    [eid] = enroll_ids(world, [world.contact()])
    receiver.answer(500, 503)
    enrollment_control.pause(ctx, eid)
    assert dispatcher.tick() == 1
    assert dispatcher.tick() == 0  # not due again before its backoff
    ctx.clock.advance(timedelta(seconds=40))  # first backoff: 30 s ± 25%
    assert dispatcher.tick() == 1
    ctx.clock.advance(timedelta(seconds=40))
    assert dispatcher.tick() == 0  # second backoff: 60 s ± 25%
    ctx.clock.advance(timedelta(seconds=40))
    assert dispatcher.tick() == 1
    [(delivery, attempts)] = webhooks.list_deliveries(ctx, webhook.id, limit=10)
    assert delivery.status == "delivered" and delivery.attempts == 3
    assert [a.status_code for a in attempts] == [500, 503, 200]
    assert len({r.headers["Cadenza-Delivery"] for r in receiver.wait_for(3)}) == 1  # same event


def test_gives_up_after_the_last_attempt_and_records_connection_errors(ctx, world, dispatcher):
    with WebhookReceiver() as gone:
        url = gone.url  # nothing listens there once it is closed
    webhook, _ = webhooks.create_webhook(ctx, None, url, ["paused"])
    [eid] = enroll_ids(world, [world.contact()])
    enrollment_control.pause(ctx, eid)
    for _ in range(rules.MAX_ATTEMPTS):
        assert dispatcher.tick() == 1
        ctx.clock.advance(rules.BACKOFF_CAP * 2)
    assert dispatcher.tick() == 0
    [(delivery, attempts)] = webhooks.list_deliveries(ctx, webhook.id, limit=10)
    assert delivery.status == "failed" and len(attempts) == rules.MAX_ATTEMPTS
    assert all(a.status_code is None and "Connect" in a.error for a in attempts)


def test_a_rolled_back_change_announces_nothing(ctx, world, receiver):
    subscribe(world, receiver, ["paused"])
    with pytest.raises(RuntimeError), ctx.db.transaction() as session:
        webhooks.emit(session, ctx.clock.now(), "paused", {"enrollment_id": 1})
        raise RuntimeError("the change fails after the event was written")
    with ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


def test_a_delivery_whose_dispatcher_died_is_sent_again_with_the_same_event_id(
    ctx, world, receiver, dispatcher
):
    subscribe(world, receiver, ["paused"])
    [eid] = enroll_ids(world, [world.contact()])
    enrollment_control.pause(ctx, eid)
    [claimed] = webhooks.claim_due(ctx)  # a dispatcher took it, then died before sending
    assert dispatcher.tick() == 0  # leased
    ctx.clock.advance(webhooks.LEASE + timedelta(seconds=1))
    assert dispatcher.tick() == 1
    [request] = receiver.wait_for(1)
    assert request.headers["Cadenza-Delivery"] == claimed.event_id


@pytest.mark.xdist_group("realclock")
def test_a_hanging_receiver_never_holds_up_the_emails(database, settings, world, receiver):
    """The worker's own loop keeps sending while its dispatcher thread waits on a receiver."""
    live = Context(db=database, clock=SystemClock(), settings=settings)
    with SmtpSink() as sink:
        mailbox = create_mailbox(
            live, world.user.id, "smtp@corp.example", transport="smtp", smtp_host=sink.host,
            smtp_port=sink.port, smtp_security="none", per_minute_limit=100_000,
        )  # fmt: skip
        world.sequence = world.make_sequence(steps=ONE_STEP, name="One")
        webhooks.create_webhook(live, None, receiver.url, ["enrolled"])
        release = receiver.hang_next()
        for contact in world.contacts(5):  # one by one: bulk first steps go 3 a minute
            enroll_ids(world, [contact], mailbox_id=mailbox.id)
        engine = Worker(live)
        runner = threading.Thread(target=engine.run, kwargs={"exit_when_idle": True})
        runner.start()
        try:
            receiver.wait_for(1)  # the dispatcher is stuck on the first delivery...
            assert len(sink.wait_for_messages(5, timeout=60)) == 5  # ...the emails still go
        finally:
            release.set()
            runner.join(timeout=60)
        assert not runner.is_alive()
    assert len(receiver.wait_for(5)) == 5
