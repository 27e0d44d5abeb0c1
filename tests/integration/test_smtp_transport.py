"""SmtpTransport against a real SMTP server on loopback, with scripted faults.

What matters is at-most-once: TRANSIENT only when the server certainly does not have the
message, UNKNOWN whenever it might. Every failure test also checks that the same transport
sends the next message normally.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from cadenza.engine.transports.base import DeliveryOutcome, DeliveryResult
from cadenza.engine.transports.capture import CaptureTransport
from cadenza.engine.transports.smtp import (
    SmtpSettings,
    SmtpTransport,
    _expect_envelope,
    _Failed,
)
from tests.support.smtp_sink import SmtpSink

USER = "rep@cadenza.test"
PASSWORD = "pa55-Word-7f3c"
SENDER = "rep@cadenza.test"
RECIPIENT = "ann@corp.example"

SENT = DeliveryOutcome.SENT
TRANSIENT = DeliveryOutcome.TRANSIENT
PERMANENT = DeliveryOutcome.PERMANENT
AUTH_FAILED = DeliveryOutcome.AUTH_FAILED
UNKNOWN = DeliveryOutcome.UNKNOWN


def message(n: int = 1, body: str = "Hello Ann,\r\nsee you soon.\r\n") -> bytes:
    return (
        f"From: {SENDER}\r\nTo: {RECIPIENT}\r\nSubject: Follow-up {n}\r\n"
        f"Message-ID: <{n}@cadenza.test>\r\n\r\n{body}"
    ).encode()


def send(transport: SmtpTransport, n: int = 1) -> DeliveryResult:
    return transport.send(SENDER, [RECIPIENT], message(n))


def assert_next_send_works(transport: SmtpTransport, sink: SmtpSink) -> None:
    before = len(sink.messages)
    assert send(transport, 99).outcome is SENT
    assert sink.message_ids()[before:] == ["<99@cadenza.test>"]


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelined"])
def start_sink(request: pytest.FixtureRequest) -> Iterator[Callable[..., SmtpSink]]:
    """Every test runs against a server that offers PIPELINING (RFC 2920: the transport
    writes MAIL, RCPT and DATA at once) and one that does not (one command at a time):
    each fault must be classified the same either way."""
    started: list[SmtpSink] = []

    def start(**options: object) -> SmtpSink:
        defaults = {"auth": {USER: PASSWORD}, "pipelining": request.param}
        sink = SmtpSink(**{**defaults, **options}).start()
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()


@pytest.fixture
def sink(start_sink: Callable[..., SmtpSink]) -> SmtpSink:
    return start_sink()


@pytest.fixture
def make_transport() -> Iterator[Callable[..., SmtpTransport]]:
    made: list[SmtpTransport] = []

    def make(
        sink: SmtpSink, *, monotonic: Callable[[], float] = time.monotonic, **overrides: object
    ) -> SmtpTransport:
        settings = SmtpSettings(
            host=sink.host,
            port=sink.port,
            security=sink.tls,
            username=USER,
            password=PASSWORD,
            timeout=5.0,
            ssl_context=sink.ssl_context_for_clients,
            local_hostname="client.cadenza.test",
        )
        transport = SmtpTransport(dataclasses.replace(settings, **overrides), monotonic=monotonic)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


@pytest.fixture
def transport(sink: SmtpSink, make_transport: Callable[..., SmtpTransport]) -> SmtpTransport:
    return make_transport(sink)


# -- success ------------------------------------------------------------------------------


@pytest.mark.parametrize("security", ["none", "starttls", "tls"])
def test_sends_with_auth_in_every_security_mode(start_sink, make_transport, security):
    sink = start_sink(tls=security)
    result = send(make_transport(sink))

    assert result == DeliveryResult(SENT, 250, "2.0.0 OK: queued")
    [received] = sink.messages
    assert (received.mail_from, received.rcpt_tos) == (SENDER, (RECIPIENT,))
    assert received.data == message(1)
    assert received.message_id == "<1@cadenza.test>"


def test_prepare_opens_the_session_the_first_send_then_uses(sink, transport):
    transport.prepare()
    assert (sink.connections, sink.messages) == (1, [])
    transport.prepare()  # a session is open: nothing more
    assert send(transport).outcome is SENT
    assert sink.connections == 1


def test_a_failed_prepare_leaves_the_send_to_try_and_report(make_transport):
    """No backoff from a prepare: its send still tries, and says what went wrong."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]  # nothing listens on it
        transport = make_transport(SmtpSink(port=port))
        transport.prepare()  # refused: no exception
        result = send(transport)
    assert result.outcome is TRANSIENT
    assert "not tried again" not in result.reply
    assert "refused" in result.reply.lower()


def test_one_connection_serves_many_sends(sink, transport):
    assert [send(transport, n).outcome for n in (1, 2, 3)] == [SENT, SENT, SENT]
    assert sink.message_ids() == ["<1@cadenza.test>", "<2@cadenza.test>", "<3@cadenza.test>"]
    assert sink.connections == 1


def test_lines_are_dot_stuffed_and_line_ends_normalised(sink, transport):
    """A bare "\\n.\\n" must not end DATA early (nor smuggle a second message)."""
    body = "one\n.\ntwo\r.\r..three\r\n.\r\nMAIL FROM:<x@evil.test>\r\n"
    assert transport.send(SENDER, [RECIPIENT], message(1, body)).outcome is SENT

    [received] = sink.messages
    expected = "one\r\n.\r\ntwo\r\n.\r\n..three\r\n.\r\nMAIL FROM:<x@evil.test>\r\n"
    assert received.data.split(b"\r\n\r\n", 1)[1] == expected.encode()


def test_several_recipients_in_one_transaction(sink, transport):
    recipients = ["ann@corp.example", "bob@corp.example"]
    assert transport.send(SENDER, recipients, message()).outcome is SENT
    assert sink.messages[0].rcpt_tos == tuple(recipients)


def test_international_addresses_and_8bit_body(sink, transport):
    sender, recipient = "rené@cadenza.test", "zoë@corp.example"
    data = f"From: {sender}\r\nSubject: café\r\n\r\nà bientôt\r\n".encode()

    assert transport.send(sender, [recipient], data).outcome is SENT
    [received] = sink.messages
    assert (received.mail_from, received.rcpt_tos, received.data) == (sender, (recipient,), data)


# -- refusals: the reply decides ----------------------------------------------------------


def test_4xx_at_mail_is_transient_and_keeps_the_reply(sink, transport):
    sink.fail_next("MAIL", "451 4.7.1 try later")

    assert send(transport) == DeliveryResult(TRANSIENT, 451, "4.7.1 try later")
    assert sink.messages == []
    assert_next_send_works(transport, sink)
    assert sink.connections == 1  # RSET, not a new session


def test_421_at_rcpt_is_transient_and_the_next_send_reconnects(sink, transport):
    sink.fail_next("RCPT", "421 4.3.2 shutting down")

    assert send(transport) == DeliveryResult(TRANSIENT, 421, "4.3.2 shutting down")
    assert_next_send_works(transport, sink)
    assert sink.connections == 2


def test_550_at_rcpt_is_permanent(sink, transport):
    sink.fail_next("RCPT", "550 5.1.1 no such user")

    assert send(transport) == DeliveryResult(PERMANENT, 550, "5.1.1 no such user")
    assert_next_send_works(transport, sink)
    assert sink.connections == 1


def test_one_refused_recipient_aborts_the_whole_message(sink, transport):
    sink.fail_next("RCPT", "250 2.1.5 OK")  # faults are consumed in order: one each
    sink.fail_next("RCPT", "550 5.1.1 no such user")

    result = transport.send(SENDER, ["ann@corp.example", "nobody@corp.example"], message())
    assert (result.outcome, result.code) == (PERMANENT, 550)
    assert sink.messages == []
    assert_next_send_works(transport, sink)


def test_a_refused_recipient_beside_an_accepted_one_sends_nothing(sink, transport):
    """The server took the first recipient, so it answers DATA with 354: pipelined,
    that answer has come before the transport learns of the refusal. It must not then
    end an empty message (the first recipient would get it): it drops the session."""
    sink.pass_next("RCPT")
    sink.fail_next("RCPT", "550 5.1.1 no such user")

    result = transport.send(SENDER, ["ann@corp.example", "nobody@corp.example"], message())
    assert (result.outcome, result.code, result.reply) == (PERMANENT, 550, "5.1.1 no such user")
    assert sink.messages == []
    assert_next_send_works(transport, sink)


@pytest.mark.parametrize(
    ("replies", "usable"),
    [
        ([("MAIL", 250), ("RCPT", 550), ("DATA", 354)], False),  # waits for a message
        ([("MAIL", 250), ("RCPT", 550), ("DATA", 554)], True),
        ([("MAIL", 451), ("RCPT", 503), ("DATA", 503)], True),
        ([("MAIL", 421)], False),  # closing
    ],
)
def test_a_pipelined_refusal_keeps_the_session_only_when_it_waits_for_nothing(replies, usable):
    """The session of a refused envelope is reused (after RSET) unless the server is
    closing it or asked for the message: RSET would then be taken as the message's
    first line, and the next envelope with it."""
    with pytest.raises(_Failed) as failed:
        _expect_envelope([(stage, code, b"reply") for stage, code in replies])
    first_refusal = next(code for stage, code in replies if code not in (250, 354))
    assert (failed.value.result.code, failed.value.usable) == (first_refusal, usable)


def test_a_server_offering_pipelining_gets_each_envelope_in_one_write(sink, transport):
    assert [send(transport, n).outcome for n in (1, 2, 3)] == [SENT, SENT, SENT]
    assert sink.message_ids() == ["<1@cadenza.test>", "<2@cadenza.test>", "<3@cadenza.test>"]
    assert sink.pipelined_envelopes == (3 if sink.pipelining else 0)


def test_554_after_the_message_is_permanent(sink, transport):
    sink.fail_next("DATA", "554 5.7.1 rejected as spam")

    assert send(transport) == DeliveryResult(PERMANENT, 554, "5.7.1 rejected as spam")
    assert sink.messages == []
    assert_next_send_works(transport, sink)


def test_4xx_after_the_message_is_transient(sink, transport):
    """A 4xx to the final dot is a definite "not taken": retrying is safe."""
    sink.fail_next("DATA", "452 4.3.1 insufficient storage")

    assert send(transport) == DeliveryResult(TRANSIENT, 452, "4.3.1 insufficient storage")
    assert_next_send_works(transport, sink)


# -- authentication and secrets -----------------------------------------------------------


def test_535_at_auth_is_auth_failed_and_never_shows_the_password(sink, transport, caplog):
    caplog.set_level(logging.DEBUG, logger="cadenza")
    sink.fail_next("AUTH", "535 5.7.8 bad credentials")

    result = send(transport)

    assert result == DeliveryResult(AUTH_FAILED, 535, "5.7.8 bad credentials")
    assert PASSWORD not in repr(result)
    assert PASSWORD not in caplog.text
    assert_next_send_works(transport, sink)


def test_wrong_password_is_auth_failed(sink, make_transport):
    result = send(make_transport(sink, password="wrong-" + PASSWORD))

    assert (result.outcome, result.code) == (AUTH_FAILED, 535)
    assert PASSWORD not in repr(result)
    assert sink.messages == []


def test_a_server_echoing_the_password_is_scrubbed(sink, transport):
    sink.fail_next("AUTH", f"535 5.7.8 no user with password {PASSWORD}")

    result = send(transport)

    assert result == DeliveryResult(AUTH_FAILED, 535, "5.7.8 no user with password ***")


def test_454_at_auth_is_transient_and_the_session_is_opened_again_after_a_wait(
    sink, make_transport
):
    now = [1000.0]
    transport = make_transport(sink, monotonic=lambda: now[0])
    sink.fail_next("AUTH", "454 4.7.0 temporary authentication failure")

    refused, held = send(transport), send(transport)
    now[0] += 1.0

    assert (refused.outcome, held.outcome, send(transport).outcome) == (TRANSIENT,) * 2 + (SENT,)
    assert held.reply.startswith("connect: not tried again for 1 s")
    assert sink.connections == 2  # the held send did not connect


def test_auth_not_offered_is_auth_failed(start_sink, make_transport):
    """Credentials set but the server offers no AUTH (here: STARTTLS needed first)."""
    sink = start_sink(tls="starttls")

    result = send(make_transport(sink, security="none"))

    assert (result.outcome, result.code) == (AUTH_FAILED, None)
    assert "no usable AUTH mechanism" in result.reply


def test_530_without_credentials_is_auth_failed(sink, make_transport):
    """The server wants AUTH but the mailbox has no credentials: its settings need fixing."""
    transport = make_transport(sink, username=None, password=None)

    result = send(transport)

    assert result == DeliveryResult(AUTH_FAILED, 530, "5.7.0 Authentication required")
    assert sink.messages == []


def test_settings_repr_hides_the_password(sink, transport):
    settings = transport.settings
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)
    assert "password='***'" in repr(settings)
    assert "password=None" in repr(dataclasses.replace(settings, password=None))


# -- broken connections: timing decides ---------------------------------------------------


def test_connection_refused_is_transient(make_transport, sink):
    with socket.socket() as holder:  # bound but not listening: connecting is refused
        holder.bind(("127.0.0.1", 0))
        result = send(make_transport(sink, port=holder.getsockname()[1]))

    assert (result.outcome, result.code) == (TRANSIENT, None)
    assert "ConnectionRefusedError" in result.reply


def test_a_session_that_cannot_be_opened_is_tried_again_after_a_growing_wait(make_transport):
    """Refused, then refused at once without a connection for 1 s, tried again, refused,
    held back for 2 s; once the server is up the send goes and the count starts over."""
    now = [1000.0]
    with socket.socket() as holder:  # bound but not listening: connecting is refused
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        listening = SmtpSink(port=port)  # the same port, started once the holder is gone
        transport = make_transport(listening, monotonic=lambda: now[0])

        first = send(transport)
        held = send(transport)
        now[0] += 1.0
        second = send(transport)
        now[0] += 1.5
        held_longer = send(transport)
    now[0] += 0.5
    with SmtpSink(port=port, auth={USER: PASSWORD}) as server:
        delivered = send(transport)
        assert len(server.messages) == 1

    assert [r.outcome for r in (first, held, second, held_longer)] == [TRANSIENT] * 4
    assert "ConnectionRefusedError" in first.reply and "ConnectionRefusedError" in second.reply
    assert held.reply.startswith("connect: not tried again for 1 s after 1 failed attempt")
    assert "ConnectionRefusedError" in held.reply  # says what the last attempt met
    assert held_longer.reply.startswith("connect: not tried again for 0.5 s after 2 failed")
    assert delivered.outcome is SENT
    assert transport._failed_opens == 0


def test_a_connection_test_is_never_held_back(make_transport):
    now = [1000.0]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        transport = make_transport(SmtpSink(port=port), monotonic=lambda: now[0])
        assert send(transport).outcome is TRANSIENT
    with SmtpSink(port=port, auth={USER: PASSWORD}):
        assert transport.check().outcome is SENT


def test_untrusted_certificate_is_transient(start_sink, make_transport):
    sink = start_sink(tls="tls")

    result = send(make_transport(sink, ssl_context=None))  # system CAs do not know the sink

    assert result.outcome is TRANSIENT
    assert "CERTIFICATE_VERIFY_FAILED" in result.reply
    assert sink.messages == []


def test_drop_at_mail_is_transient_and_the_next_send_reconnects(sink, transport):
    sink.drop_next("MAIL")

    result = send(transport)

    assert (result.outcome, result.code) == (TRANSIENT, None)
    assert result.reply.startswith("MAIL: SMTPServerDisconnected")
    assert_next_send_works(transport, sink)
    assert sink.connections == 2


def test_drop_after_the_message_is_unknown(sink, transport):
    sink.drop_next("DATA")  # the whole message arrived; the answer never comes

    result = send(transport)

    assert (result.outcome, result.code) == (UNKNOWN, None)
    assert result.reply.startswith("end of DATA: SMTPServerDisconnected")
    assert_next_send_works(transport, sink)


@pytest.mark.xdist_group("realclock")
def test_no_answer_after_the_message_is_unknown_even_though_it_arrived(sink, make_transport):
    """The dangerous case: the server has the message, the client only sees a timeout."""
    transport = make_transport(sink, timeout=0.5)
    release = sink.hang_next_data()

    result = send(transport)
    release.set()

    assert (result.outcome, result.code) == (UNKNOWN, None)
    assert "timed out" in result.reply
    assert sink.message_ids() == ["<1@cadenza.test>"]  # a resend would be a duplicate
    assert_next_send_works(transport, sink)


@pytest.mark.parametrize("farewell", [None, "421 4.4.2 idle timeout"])
def test_idle_session_closed_by_the_server_is_reopened_transparently(sink, transport, farewell):
    assert send(transport, 1).outcome is SENT
    sink.close_connections(farewell)

    assert send(transport, 2).outcome is SENT
    assert sink.message_ids() == ["<1@cadenza.test>", "<2@cadenza.test>"]
    assert sink.connections == 2


def test_reused_session_dropped_at_mail_is_retried_only_once(sink, transport):
    assert send(transport, 1).outcome is SENT
    sink.drop_next("MAIL", times=2)

    assert send(transport, 2).outcome is TRANSIENT
    assert sink.connections == 2
    assert_next_send_works(transport, sink)


def test_reused_session_dropped_after_the_message_is_not_retried(sink, transport):
    assert send(transport, 1).outcome is SENT
    sink.drop_next("DATA")

    assert send(transport, 2).outcome is UNKNOWN
    assert sink.message_ids() == ["<1@cadenza.test>"]
    assert sink.connections == 1


# -- check and close ----------------------------------------------------------------------


def test_check_returns_the_servers_answer(sink, transport):
    assert transport.check() == DeliveryResult(SENT, 250, "OK")
    assert_next_send_works(transport, sink)
    assert sink.connections == 1  # the checked session is kept for sending


def test_check_reports_refused_credentials(sink, make_transport):
    result = make_transport(sink, password="wrong").check()
    assert (result.outcome, result.code) == (AUTH_FAILED, 535)


def test_close_is_polite_idempotent_and_never_raises(sink, transport):
    assert send(transport).outcome is SENT
    sink.close_connections()
    transport.close()  # QUIT on a dead session: swallowed
    transport.close()
    assert_next_send_works(transport, sink)


def test_capture_transport_says_sent_and_counts():
    capture = CaptureTransport()
    results = [capture.send(SENDER, [RECIPIENT], message(n)) for n in (1, 2)]
    capture.close()
    assert results == [DeliveryResult(SENT, 250, "captured")] * 2
    assert capture.count == 2


def test_sink_counts_without_keeping_and_wakes_waiters(start_sink, make_transport):
    """The sink's own contract, as engine tests and the benchmark use it."""
    sink = start_sink(auth=None, keep_messages=False)
    transport = make_transport(sink, username=None, password=None)
    sender = threading.Thread(target=lambda: [send(transport, n) for n in (1, 2, 3)])
    sender.start()

    assert sink.wait_for_messages(3, timeout=10) == []  # counted, not kept
    sender.join()
    assert sink.message_count == 3
    sink.reset()
    assert (sink.message_count, sink.connections) == (0, 0)
