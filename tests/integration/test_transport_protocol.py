"""Transports are built from a plain settings value, with no database anywhere, and every
one of them keeps the whole Transport protocol (send, check, close)."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterator

import pytest

from cadenza.domain.transport_settings import CaptureSettings, SmtpSettings, TransportSettings
from cadenza.engine.transports.base import DeliveryOutcome, DeliveryResult, Transport
from cadenza.engine.transports.capture import CaptureTransport
from cadenza.engine.transports.factory import transport_for
from cadenza.engine.transports.smtp import SmtpTransport
from tests.support.smtp_sink import SmtpSink

USER, PASSWORD = "rep@cadenza.test", "pa55-Word-7f3c"
RAW = (
    b"From: rep@cadenza.test\r\nTo: ann@corp.example\r\nMessage-ID: <1@cadenza.test>\r\n\r\nHi\r\n"
)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink(auth={USER: PASSWORD}) as server:
        yield server


def settings_for(kind: type, sink: SmtpSink) -> TransportSettings:
    """One value of each kind of settings: a kind added without one fails here."""
    if kind is CaptureSettings:
        return CaptureSettings()
    if kind is SmtpSettings:
        return SmtpSettings(
            host=sink.host, port=sink.port, security="none", username=USER, password=PASSWORD,
            timeout=5.0,
        )  # fmt: skip
    raise AssertionError(f"no sample settings for {kind.__name__}: add one")


def test_an_smtp_transport_sends_from_a_settings_value_with_no_database(sink):
    transport = transport_for(settings_for(SmtpSettings, sink))
    try:
        assert isinstance(transport, SmtpTransport)
        result = transport.send(USER, ["ann@corp.example"], RAW)
    finally:
        transport.close()
    assert result == DeliveryResult(DeliveryOutcome.SENT, 250, "2.0.0 OK: queued")
    assert sink.message_ids() == ["<1@cadenza.test>"]


def test_a_capture_settings_value_gives_the_capture_transport(sink):
    transport = transport_for(CaptureSettings())
    assert isinstance(transport, CaptureTransport)
    assert transport.send(USER, ["ann@corp.example"], RAW).outcome is DeliveryOutcome.SENT
    assert sink.message_ids() == []  # capturing sends nothing anywhere


def test_a_value_that_is_no_settings_has_no_transport():
    with pytest.raises(TypeError):
        transport_for(object())  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", typing.get_args(TransportSettings), ids=lambda k: k.__name__)
def test_every_transport_keeps_the_whole_protocol(sink, kind):
    """`check` included: the connection test calls it on whatever the factory returns."""
    transport = transport_for(settings_for(kind, sink))
    assert isinstance(transport, Transport)
    members = [n for n, v in vars(Transport).items() if callable(v) and not n.startswith("_")]
    assert sorted(members) == ["check", "close", "prepare", "send"]
    for name in members:
        declared = inspect.signature(getattr(Transport, name))
        implemented = inspect.signature(getattr(type(transport), name))
        assert list(implemented.parameters) == list(declared.parameters), name
    try:
        transport.prepare()  # the worker's, before a first slot: sends nothing
        assert sink.messages == []
        assert sink.connections == (1 if kind is SmtpSettings else 0)
        checked = transport.check()
        assert checked.outcome is DeliveryOutcome.SENT and checked.code == 250
        assert sink.messages == []  # a check sends nothing
    finally:
        transport.close()
    transport.close()  # closing twice is harmless (a check always closes afterwards)
