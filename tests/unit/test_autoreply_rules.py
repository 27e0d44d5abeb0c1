"""Auto-reply rules one by one (domain/inbound/autoreply.py): the headers that mark an
automatic answer, and the range of return dates believed."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cadenza.domain.inbound.autoreply import MAX_AHEAD, is_auto_reply, return_date
from cadenza.domain.inbound.parse import parse

RECEIVED = date(2026, 3, 2)


def mail(headers: str, subject: str = "Re: Hi Ann") -> bytes:
    return (
        "From: Ann <ann@corp.example>\r\nTo: rep@example.com\r\n"
        f"Subject: {subject}\r\nMessage-ID: <a.1@corp.example>\r\n{headers}\r\nThanks!\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("headers", "automatic"),
    [
        ("", False),
        ("Auto-Submitted: auto-replied\r\n", True),
        ("Auto-Submitted: auto-generated\r\n", True),
        ("Auto-Submitted: no\r\n", False),  # the header's way of saying "a person wrote this"
        ("Auto-Submitted: No\r\n", False),
        ("X-Autoreply: yes\r\n", True),
        ("X-Autorespond: yes\r\n", True),
        ("Precedence: auto_reply\r\n", True),
        ("Precedence: Auto_Reply\r\n", True),
        ("Precedence: bulk\r\n", False),
        ("X-Auto-Response-Suppress: All\r\n", False),  # Exchange sets it on ordinary mail too
    ],
)
def test_the_headers_that_mark_an_automatic_answer(headers, automatic):
    assert is_auto_reply(parse(mail(headers))) is automatic


def test_an_out_of_office_subject_is_automatic_without_any_header():
    assert is_auto_reply(parse(mail("", subject="Out of Office: Hi Ann")))


@pytest.mark.parametrize(
    ("offset", "believed"),
    [(-1, False), (0, False), (1, True), (MAX_AHEAD.days, True), (MAX_AHEAD.days + 1, False)],
)
def test_a_return_date_is_believed_from_tomorrow_to_the_limit(offset, believed):
    day = RECEIVED + timedelta(days=offset)
    expected = day if believed else None
    assert return_date(f"I am back {day.isoformat()}.", RECEIVED) == expected
