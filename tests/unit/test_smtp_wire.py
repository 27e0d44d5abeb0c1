"""The SMTP transport's fast paths write exactly what the general ones write.

`_data_payload` skips its two regular expressions when a message needs neither
(what composing writes: CRLF lines, none starting with a dot), and `_quoted` skips
the stdlib's address parser for a plain address. Either differing by one byte would
change what a server receives, or merge a line into the DATA terminator.
"""

import smtplib

from hypothesis import given
from hypothesis import strategies as st

from cadenza.engine.transports.smtp import _LEADING_DOT, _LINE_END, _data_payload, _quoted


def _regex_payload(message: bytes) -> bytes:
    payload = _LEADING_DOT.sub(b"..", _LINE_END.sub(b"\r\n", message))
    return payload if payload.endswith(b"\r\n") else payload + b"\r\n"


pieces = st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b".", b"\r\n.", b"..", b" "])


@given(st.lists(pieces, max_size=30).map(b"".join))
def test_the_payload_is_the_regular_expressions_own(message):
    assert _data_payload(message) == _regex_payload(message)


def test_dots_and_bare_line_ends_are_still_handled():
    assert _data_payload(b".a\n.b\rc") == b"..a\r\n..b\r\nc\r\n"
    assert _data_payload(b"a\r\nb\r\n") == b"a\r\nb\r\n"


address_characters = st.sampled_from(list("ab9.@<>\"() '+-_!#[]:,;\\ü"))


@given(st.lists(address_characters, max_size=16).map("".join))
def test_a_quoted_address_is_smtplibs_own(address):
    assert _quoted(address) == smtplib.quoteaddr(address)


def test_plain_and_unusual_addresses():
    for address in ["ann@corp.example", "a+b@c.d", "Ann <a@b.c>", "a..b@c.d", "(x) a@b.c"]:
        assert _quoted(address) == smtplib.quoteaddr(address)
    assert _quoted("ann@corp.example") == "<ann@corp.example>"
