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


def test_exchanges_automatic_reply_is_automatic():
    """Exchange marks its own out-of-office with X-Auto-Response-Suppress."""
    raw = mail("X-Auto-Response-Suppress: All\r\n", subject="Automatic reply: Hi Ann")
    assert is_auto_reply(parse(raw))


@pytest.mark.parametrize(
    ("text", "back"),
    [
        ("Till 9 March.", date(2026, 3, 10)),  # "until" at the very start of the text
        ("Reachable again 10 March.", date(2026, 3, 10)),  # no word either way: the day
        ("I am not back yet. Away until 9 March.", date(2026, 3, 10)),  # one sentence only
        ("Not on 31.02. but back on 10.03.", date(2026, 3, 10)),  # an impossible date skipped
        ("Back on 10.03.26.", date(2026, 3, 10)),  # a two-digit year
        ("Back on 10 March 2025.", None),  # a year stated is taken as written
    ],
)
def test_how_a_return_date_is_read(text, back):
    assert return_date(text, RECEIVED) == back


def test_a_day_early_in_the_year_said_in_december_is_next_years():
    assert return_date("Back on 5 January.", date(2026, 12, 20)) == date(2027, 1, 5)


def test_only_the_forty_characters_before_a_date_say_how_to_read_it():
    near = "Back soon, on the road most days, until 9 March."
    far = "Back soon, on the roads most days, until 9 March."
    assert [t.index("9 March") - t.index("Back") for t in (near, far)] == [40, 41]
    assert return_date(near, RECEIVED) == date(2026, 3, 9)  # "back" read: the return day
    assert return_date(far, RECEIVED) == date(2026, 3, 10)  # out of reach: "until", the day after
