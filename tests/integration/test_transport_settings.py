"""A mailbox becomes a plain settings value in one service function, and a connection test
is a service that builds its transport through the factory the app hands it."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from cadenza.domain.delivery_outcome import DeliveryOutcome, DeliveryResult
from cadenza.domain.errors import CadenzaError
from cadenza.domain.transport_settings import (
    SMTP_TIMEOUT_SECONDS,
    CaptureSettings,
    SmtpSettings,
    TransportSettings,
)
from cadenza.engine.inbox import check_login
from cadenza.services.accounts import connection_tests, users
from cadenza.services.accounts.connection_tests import ConnectionTests
from cadenza.services.accounts.mailboxes import (
    create_mailbox,
    transport_settings,
    update_mailbox,
)
from cadenza.services.context import Context

PASSWORD = "s3cret-Pass-91"


def smtp_mailbox(ctx, owner_id, **fields):
    values = {"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_security": "starttls"}
    return create_mailbox(ctx, owner_id, "sam@corp.example", **{**values, **fields})


def test_a_capture_mailbox_has_nothing_to_connect_to(ctx, world):
    assert transport_settings(ctx, world.mailbox.id) == CaptureSettings()


def test_an_smtp_mailbox_gives_its_server_and_its_opened_password(ctx, world):
    mailbox = smtp_mailbox(
        ctx, world.user.id, smtp_port=2526, smtp_username="sam", smtp_password=PASSWORD
    )
    assert transport_settings(ctx, mailbox.id) == SmtpSettings(
        host="127.0.0.1",
        port=2526,
        security="starttls",
        username="sam",
        password=PASSWORD,  # stored sealed, opened for the transport only
        timeout=SMTP_TIMEOUT_SECONDS,
    )
    assert PASSWORD not in repr(transport_settings(ctx, mailbox.id))


@pytest.mark.parametrize(("security", "port"), [("tls", 465), ("starttls", 587), ("none", 587)])
def test_without_a_port_the_security_mode_gives_the_usual_one(ctx, world, security, port):
    mailbox = smtp_mailbox(ctx, world.user.id, smtp_security=security)
    settings = transport_settings(ctx, mailbox.id, timeout=2.5)
    assert (settings.port, settings.security, settings.timeout) == (port, security, 2.5)
    assert settings.username is None and settings.password is None


def test_equal_settings_until_the_connection_changes(ctx, world):
    """A worker keeps its session while the value is equal and reopens it when not."""
    mailbox = smtp_mailbox(ctx, world.user.id, smtp_username="sam", smtp_password=PASSWORD)
    before = transport_settings(ctx, mailbox.id)
    update_mailbox(ctx, mailbox.id, {"from_name": "Sam", "daily_limit": 50})
    assert transport_settings(ctx, mailbox.id) == before
    update_mailbox(ctx, mailbox.id, {"smtp_password": "an0ther-Pass"})
    assert transport_settings(ctx, mailbox.id).password == "an0ther-Pass"
    assert transport_settings(ctx, mailbox.id) != before


def test_a_withheld_password_is_logged_and_no_password_is_not(ctx, world, caplog):
    """The worker reads the settings every tick: only a password held back is worth a line."""
    caplog.set_level(logging.WARNING, logger="cadenza.mailboxes")
    relay = smtp_mailbox(ctx, world.user.id, smtp_security="none")  # no login at all
    stored = smtp_mailbox(ctx, world.user.id, smtp_security="none", smtp_password=PASSWORD)
    stricter = ctx.settings.model_copy(update={"plain_auth_hosts": "relay.internal"})
    strict = Context(db=ctx.db, clock=ctx.clock, settings=stricter)
    assert transport_settings(strict, relay.id).password is None
    assert caplog.messages == []
    assert transport_settings(strict, stored.id).password is None
    assert caplog.messages == [f"mailbox {stored.id}: no password sent to 127.0.0.1 without "
                               "encryption"]  # fmt: skip


def test_someone_elses_mailbox_answers_as_missing(ctx, world):
    mailbox = smtp_mailbox(ctx, world.user.id, smtp_username="sam", smtp_password=PASSWORD)
    outsider = users.create_user(ctx, "outsider@example.com")
    with pytest.raises(CadenzaError) as hidden:
        transport_settings(ctx, mailbox.id, actor_id=outsider.id)
    assert hidden.value.code == "mailbox_not_found"


# -- the connection test service ---------------------------------------------------------


class RecordingFactory:
    """Stands in for engine.transports.factory.transport_for: what the service asks for."""

    def __init__(self, result: DeliveryResult) -> None:
        self.result = result
        self.made: list[TransportSettings] = []
        self.closed = 0

    def __call__(self, settings: TransportSettings) -> RecordingFactory:
        self.made.append(settings)
        return self

    def check(self) -> DeliveryResult:
        return self.result

    def close(self) -> None:
        self.closed += 1


def test_a_test_builds_its_transport_with_a_short_timeout_and_closes_it(ctx, world):
    mailbox = smtp_mailbox(ctx, world.user.id, smtp_username="sam", smtp_password=PASSWORD)
    refused = DeliveryResult(DeliveryOutcome.AUTH_FAILED, 535, "5.7.8 bad credentials")
    factory = RecordingFactory(refused)
    tests = ConnectionTests(ctx.clock, factory, check_login)
    assert tests.run(ctx, mailbox.id, world.user.id) == refused
    [settings] = factory.made
    assert settings == transport_settings(
        ctx, mailbox.id, timeout=connection_tests.CHECK_TIMEOUT_SECONDS
    )
    assert settings.timeout <= 5 and factory.closed == 1


def test_a_hidden_mailbox_is_refused_before_it_counts_against_the_user(ctx, world):
    outsider = users.create_user(ctx, "outsider@example.com")
    factory = RecordingFactory(DeliveryResult(DeliveryOutcome.SENT, 250, "OK"))
    tests = ConnectionTests(ctx.clock, factory, check_login)
    for _ in range(connection_tests.PER_USER_PER_MINUTE + 1):
        with pytest.raises(CadenzaError) as hidden:
            tests.run(ctx, world.mailbox.id, outsider.id)
        assert hidden.value.code == "mailbox_not_found"
    assert factory.made == []
    own = create_mailbox(ctx, outsider.id, "outsider@example.com")
    for _ in range(connection_tests.PER_USER_PER_MINUTE):
        assert tests.run(ctx, own.id, outsider.id).outcome is DeliveryOutcome.SENT
    with pytest.raises(CadenzaError) as braked:
        tests.run(ctx, own.id, outsider.id)
    assert braked.value.code == "too_many_attempts" and len(factory.made) == 6
    ctx.clock.advance(timedelta(minutes=1))
    assert tests.run(ctx, own.id, outsider.id).outcome is DeliveryOutcome.SENT
