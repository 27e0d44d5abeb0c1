"""Outgoing email bytes: headers, alternatives, threading, Message-IDs, header-injection safety."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from datetime import datetime
from email import policy
from email._header_value_parser import get_addr_spec
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cadenza.domain import message
from cadenza.domain.message import (
    OutgoingEmail,
    build_mime,
    html_to_text,
    new_message_id,
    reply_subject,
)

DATE = datetime(2025, 3, 30, 9, 15, 7, tzinfo=ZoneInfo("Europe/Berlin"))
HTML = '<p>Hello <b>Bob</b>,</p><p>See <a href="https://example.test/x">our plan</a>.</p>'
INJECTION = "Hi\r\nBcc: victim@x.test"
# What Python's email package would otherwise decode into a real CR LF on the wire.
ENCODED_INJECTION = "=?utf-8?q?Hi=0D=0ABcc:_victim@x.test?="


def make(**changes: object) -> OutgoingEmail:
    email = OutgoingEmail(
        message_id="<abc123@sender.test>",
        from_email="ann@sender.test",
        from_name="Ann Rep",
        to_email="bob@example.test",
        to_name="Bob Buyer",
        subject="Quick question",
        html_body=HTML,
        date=DATE,
    )
    return replace(email, **changes)


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)


def head(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def content(part: EmailMessage) -> str:
    """The parser keeps the wire's CRLF inside decoded bodies."""
    return part.get_content().replace("\r\n", "\n")


def mailbox(raw: bytes, header: str) -> tuple[str, str]:
    """Display name decoded per RFC 2047 6.2, which ignores the folding between adjacent
    encoded-words. policy.default keeps it as a space inside a display name (CPython
    gh-128110, fixed upstream), so it cannot judge long non-ASCII names."""
    ((name, address),) = getaddresses([BytesParser(policy=policy.compat32).parsebytes(raw)[header]])
    return str(make_header(decode_header(name))), address


def collapsed(text: str) -> str:
    return " ".join("".join(" " if unicodedata.category(c) == "Cc" else c for c in text).split())


# --- structure and headers -------------------------------------------------------------


def test_plain_then_html_alternatives_both_utf8():
    message = parse(build_mime(make()))

    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    assert plain.get_content_charset() == html.get_content_charset() == "utf-8"
    assert content(plain) == "Hello Bob,\n\nSee our plan (https://example.test/x).\n"
    assert content(html) == HTML + "\n"
    assert message["MIME-Version"] == "1.0"
    assert plain["MIME-Version"] is None and html["MIME-Version"] is None


def test_given_text_body_is_used_and_non_ascii_bodies_round_trip():
    raw = build_mime(make(text_body="Grüße,\nZoë 🎉", html_body="<p>Grüße, Zoë 🎉</p>"))
    plain, html = parse(raw).iter_parts()

    assert content(plain) == "Grüße,\nZoë 🎉\n"
    assert content(html) == "<p>Grüße, Zoë 🎉</p>\n"
    assert raw.isascii()  # 7-bit transfer encodings: no 8BITMIME needed


def test_non_ascii_name_and_subject_are_rfc2047_encoded_and_decode_back():
    raw = build_mime(make(from_name="Zoë Müller", subject="Grüße aus München 🎉"))
    message = parse(raw)

    assert head(raw).isascii()
    assert re.search(rb"^From: =\?utf-8\?", head(raw), re.MULTILINE)
    assert re.search(rb"^Subject: =\?utf-8\?", head(raw), re.MULTILINE)
    assert message["Subject"] == "Grüße aus München 🎉"
    (sender,) = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Zoë Müller", "ann@sender.test")


def test_to_with_and_without_name():
    with_name = parse(build_mime(make(to_name="Smith, Bob")))
    without = build_mime(make(to_name=None))

    (recipient,) = with_name["To"].addresses
    assert (recipient.display_name, recipient.addr_spec) == ("Smith, Bob", "bob@example.test")
    assert b"\r\nTo: bob@example.test\r\n" in without


def test_blank_names_are_left_out():
    raw = build_mime(make(from_name="  \r\n ", to_name=""))
    assert raw.startswith(b"From: ann@sender.test\r\nTo: bob@example.test\r\n")


def test_date_is_the_same_instant():
    message = parse(build_mime(make()))
    assert message["Date"].datetime == DATE
    assert message["Date"] == "Sun, 30 Mar 2025 09:15:07 +0200"


def test_message_id_is_preserved_exactly():
    message_id = new_message_id("ann@sender.test")
    raw = build_mime(make(message_id=message_id))
    assert f"\r\nMessage-ID: {message_id}\r\n".encode() in raw
    assert parse(raw)["Message-ID"] == message_id


def test_threading_headers():
    chain = ("<first@sender.test>", "<second@sender.test>")
    message = parse(build_mime(make(in_reply_to=chain[-1], references=chain)))

    assert message["In-Reply-To"] == "<second@sender.test>"
    assert message["References"] == "<first@sender.test> <second@sender.test>"


def test_no_threading_headers_for_a_first_email():
    message = parse(build_mime(make()))
    assert message["In-Reply-To"] is None and message["References"] is None


def test_long_ids_and_urls_stay_verbatim_instead_of_being_encoded():
    """The email package would turn these into encoded-words, breaking threading and unsubscribe."""
    long_id = f"<{'a' * 80}@mail.a-rather-long-subdomain.example-company.test>"
    unsubscribe = f"<https://sender.test/unsubscribe/{'t' * 150}>, <mailto:u@sender.test>"
    raw = build_mime(
        make(
            message_id=long_id,
            in_reply_to=long_id,
            references=(long_id, "<b@c>"),
            extra_headers=(
                ("List-Unsubscribe", unsubscribe),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ),
        )
    )
    message = parse(raw)

    assert b"=?" not in head(raw)
    assert message["Message-ID"] == message["In-Reply-To"] == long_id
    assert message["References"] == f"{long_id} <b@c>"
    assert message["List-Unsubscribe"] == unsubscribe
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_non_ascii_extra_header_is_encoded():
    raw = build_mime(make(extra_headers=(("X-Campaign", "Frühling =?x?= 🎉"),)))
    assert head(raw).isascii()
    assert parse(raw)["X-Campaign"] == "Frühling =?x?= 🎉"


@pytest.mark.parametrize(
    "headers",
    [
        (("Bcc", "victim@x.test"),),
        (("subject", "again"),),
        (("Message-ID", "<x@y>"),),
        (("X-A", "1"), ("x-a", "2")),
        (("X Space", "1"),),
        (("X-Colon:", "1"),),
        (("X-Evil\r\nBcc", "v@x.test"),),
        (("", "1"),),
    ],
)
def test_extra_header_names_must_be_valid_unreserved_and_unique(headers):
    with pytest.raises(ValueError):
        make(extra_headers=headers)


# --- header injection --------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["subject", "from_name", "to_name", "extra"], ids=lambda field: field
)
@pytest.mark.parametrize(
    "evil",
    [
        INJECTION,
        "Hi\nBcc: victim@x.test",
        "Hi\rBcc: victim@x.test",
        "Hi\u2028Bcc: victim@x.test",
        "Hi\x85Bcc: victim@x.test",
        "Hi\x0bBcc: victim@x.test",
        "Hi\x00\r\n\r\nBcc: victim@x.test",
        ENCODED_INJECTION,
        "Zoë " + ENCODED_INJECTION,
    ],
)
def test_header_injection_never_adds_a_header(field, evil):
    changes = {"extra_headers": (("X-Note", evil),)} if field == "extra" else {field: evil}
    raw = build_mime(make(**changes))
    message = parse(raw)

    names = [name.lower() for name in message]  # header names, in order
    assert "bcc" not in names
    assert b"\nBcc" not in raw
    for name in ("subject", "from", "to", "message-id"):
        assert names.count(name) == 1
    expected = collapsed(evil)
    if field == "subject":
        assert message["Subject"] == expected
    elif field == "extra" and expected.isascii():  # written verbatim, even a literal "=?"
        assert f"\r\nX-Note: {expected}\r\n".encode() in raw
    elif field == "extra":
        assert message["X-Note"] == expected
    else:
        header = "From" if field == "from_name" else "To"
        assert len(message[header].addresses) == 1
        assert mailbox(raw, header)[0] == expected


def test_long_display_name_keeps_its_quotes():
    """policy.SMTP folds this name unquoted, turning one mailbox into several."""
    name = 'Smith, John (the "boss"), victim@x.test; ' * 5
    raw = build_mime(make(to_name=name))

    assert [a.addr_spec for a in parse(raw)["To"].addresses] == ["bob@example.test"]
    assert mailbox(raw, "To") == (name.strip(), "bob@example.test")
    assert max(len(line) for line in head(raw).split(b"\r\n")) <= 78


def test_long_non_ascii_display_name_round_trips():
    name = "Zoë Müller-Lüdenscheidt 田中俊介 🎉 " * 4
    raw = build_mime(make(from_name=name))

    assert head(raw).isascii()
    assert mailbox(raw, "From") == (name.strip(), "ann@sender.test")


def test_subject_injection_yields_exactly_one_subject():
    message = parse(build_mime(make(subject=INJECTION)))
    assert message.get_all("Subject") == ["Hi Bcc: victim@x.test"]
    assert message.get_all("Bcc") is None


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "bob@example.test\r\nBcc: victim@x.test",
        "bob@example.test\n",
        "bob@example.test\r",
        "bob@example.test, victim@x.test",
        "Bob <bob@example.test>",
        "<bob@example.test>",
        "bob@example.test>",
        "bob example.test",
        "bob",
        "@example.test",
        "bob@",
        "",
        " bob@example.test",
        "bob smith@example.test",
        "bob@exa mple.test",
        "zoë@example.test",
        "bob@example..test",
        "bob@@example.test",
        "bob@example.test\u2028",
    ],
)
@pytest.mark.parametrize("field", ["to_email", "from_email"])
def test_invalid_addresses_are_rejected(field, address):
    with pytest.raises(ValueError):
        build_mime(make(**{field: address}))


@given(st.one_of(st.from_regex(message._DOT_ATOM_ADDRESS, fullmatch=True), st.text()))
def test_an_address_taken_by_the_quick_pattern_is_one_the_stdlib_parser_takes_as_is(address):
    """The pattern lets addresses skip the parser: it must never let one through that
    the parser would refuse or read otherwise."""
    if message._DOT_ATOM_ADDRESS.fullmatch(address):
        parsed, rest = get_addr_spec(address)
        assert (rest, parsed.all_defects, parsed.addr_spec) == ("", [], address)
        assert Address(addr_spec=address).addr_spec == address


@pytest.mark.parametrize(
    "address", ['"bob..smith"@example.test', "bob@[192.0.2.1]", "bob@under_score.test"]
)
def test_addresses_beyond_the_quick_pattern_are_still_taken_by_the_parser(address):
    assert not message._DOT_ATOM_ADDRESS.fullmatch(address)
    assert f"<{address}>".encode() in build_mime(make(to_email=address))


def test_international_domain_is_sent_as_punycode():
    raw = build_mime(make(to_email="bob@München.test"))
    assert parse(raw)["To"].addresses[0].addr_spec == "bob@xn--mnchen-3ya.test"


@pytest.mark.parametrize(
    "message_id", ["abc@x.test", "<abc>", "<a b@x.test>", "<a@x.test>\r\nBcc: v@x.test", "<>"]
)
@pytest.mark.parametrize("field", ["message_id", "in_reply_to", "references"])
def test_invalid_message_ids_are_rejected(field, message_id):
    value = (message_id,) if field == "references" else message_id
    with pytest.raises(ValueError):
        make(**{field: value})


def test_naive_date_is_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        make(date=datetime(2025, 1, 1, 9, 0))


# --- line discipline ---------------------------------------------------------------------


def test_crlf_lines_no_longer_than_998_octets():
    long_subject = "Grüße " * 150 + "x" * 1500 + " 🎉" * 100
    long_line = "word " * 1000
    raw = build_mime(
        make(
            subject=long_subject,
            from_name="Zoë " * 100,
            html_body=f"<p>{long_line}</p><p>{'y' * 5000}</p>",
            text_body=f"{long_line}\n{'ü' * 5000}",
            references=tuple(f"<{i}-{'r' * 60}@sender.test>" for i in range(20)),
        )
    )
    lines = raw.split(b"\r\n")

    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in lines) <= 998
    assert raw.isascii()
    message = parse(raw)
    assert message["Subject"] == collapsed(long_subject)
    plain, html = message.iter_parts()
    assert content(plain) == f"{long_line}\n{'ü' * 5000}\n"
    assert "y" * 5000 in content(html)


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        ("Hello Bob,\n\n.a line that starts with a dot\nbye", "7bit"),
        ("Grüße, Zoë 🎉\n=?utf-8?q?x?= stays text", "quoted-printable"),
        ("ascii but " + "long " * 300, "quoted-printable"),  # one line over 998 octets
    ],
)
def test_bodies_go_7bit_when_they_can_else_quoted_printable(body, encoding):
    plain, _ = parse(build_mime(make(text_body=body))).iter_parts()

    assert plain["Content-Transfer-Encoding"] == encoding
    assert content(plain) == body + "\n"


def test_a_body_cannot_forge_the_boundary_or_end_the_message():
    raw = build_mime(make(text_body="--=_forged\r\n.\r\nQUIT", html_body="<p>--=_x--</p>"))
    boundary = parse(raw).get_boundary()

    assert raw.count(f"--{boundary}".encode()) == 3  # two parts and the closing delimiter
    plain, html = parse(raw).iter_parts()
    assert content(plain) == "--=_forged\n.\nQUIT\n"
    assert content(html) == "<p>--=_x--</p>\n"


def test_a_token_too_long_for_any_header_line_is_refused():
    with pytest.raises(ValueError):
        build_mime(make(extra_headers=(("List-Unsubscribe", f"<https://x.test/{'a' * 1000}>"),)))


# --- Message-ID --------------------------------------------------------------------------


def test_new_message_id_is_unique_random_and_under_the_senders_domain():
    ids = [new_message_id("Ann@Sender.Example.test") for _ in range(10_000)]

    assert len(set(ids)) == len(ids)
    for message_id in ids[:100]:
        match = re.fullmatch(r"<([A-Za-z0-9_-]+)@sender\.example\.test>", message_id)
        assert match and len(match[1]) >= 32


def test_new_message_id_uses_the_ascii_form_of_an_international_domain():
    assert new_message_id("ann@münchen.test").endswith("@xn--mnchen-3ya.test>")


def test_new_message_id_rejects_a_bad_sender():
    with pytest.raises(ValueError):
        new_message_id("ann@sender.test\r\n")


# --- reply_subject -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Quick question", "Re: Quick question"),
        ("Re: Quick question", "Re: Quick question"),
        ("Re: Re: Quick question", "Re: Quick question"),
        ("RE: re:Re :  Quick question ", "Re: Quick question"),
        ("  Quick\r\n question  ", "Re: Quick question"),
        ("Are you free?", "Re: Are you free?"),
        ("Regarding: pricing", "Re: Regarding: pricing"),
        ("Quick question re: pricing", "Re: Quick question re: pricing"),
        ("", "Re:"),
    ],
)
def test_reply_subject(subject, expected):
    assert reply_subject(subject) == expected


# --- html_to_text ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("<p>\n  Spread\n  over   lines\n</p>", "Spread over lines"),
        ("Line one<br>Line two<br/>Line three", "Line one\nLine two\nLine three"),
        ("<div>a</div><div><div>b</div></div>", "a\nb"),
        ("<h1>Title</h1>Intro", "Title\n\nIntro"),
        (
            "<p>Items:</p><ul><li>one</li><li>two</li></ul><p>end</p>",
            "Items:\n\n- one\n- two\n\nend",
        ),
        ("<ol><li><p>one</p></li></ol>", "- one"),
        ('<a href="https://x.test/p">the plan</a>', "the plan (https://x.test/p)"),
        ('<a href="https://x.test/">https://x.test/</a>', "https://x.test/"),
        ('<a href="mailto:ann@x.test">ann@x.test</a>', "ann@x.test"),
        ('<a href="#top">top</a>', "top"),
        ('<a href="https://x.test/"><img src="l.png" alt="Logo"></a>', "Logo (https://x.test/)"),
        ('<a href="https://x.test/"></a>', "https://x.test/"),
        (
            "Tom &amp; Jerry &lt;3 &quot;hi&quot; &#39;x&#x27; caf&eacute;",
            "Tom & Jerry <3 \"hi\" 'x' café",
        ),
        ("a&nbsp;b", "a b"),
        ("<style>p { color: red }</style><p>Hi</p><script>alert('<p>x</p>')</script>", "Hi"),
        ("<html><head><title>T</title><p>Body", "Body"),
        ("<p>a</p>\n\n\n<br><br><br><br><p>b</p>", "a\n\nb"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"),
        ("<b>bold</b> <i>italic</i>", "bold italic"),
        ("", ""),
    ],
)
def test_html_to_text(html, expected):
    assert html_to_text(html) == expected


# --- property ----------------------------------------------------------------------------

# st.text() rarely spells an encoded-word; this does, with line breaks and non-ASCII around it.
encoded_word_soup = st.lists(
    st.sampled_from(["=?utf-8?q?", "=?utf-8?b?", "=0D=0A", "?=", "Bcc: v@x", " ", "\r\n", "ü"])
).map("".join)
header_text = st.text() | encoded_word_soup


@given(subject=header_text, from_name=header_text, to_name=header_text)
def test_any_text_gives_one_header_each_and_decodes_back_collapsed(subject, from_name, to_name):
    raw = build_mime(make(subject=subject, from_name=from_name, to_name=to_name))
    message = parse(raw)

    assert head(raw).isascii()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    for name in ("Subject", "From", "To"):
        assert len(message.get_all(name)) == 1
    assert message.get_all("Bcc") is None
    assert message["Subject"] == collapsed(subject)
    assert [a.addr_spec for a in message["From"].addresses] == ["ann@sender.test"]
    assert [a.addr_spec for a in message["To"].addresses] == ["bob@example.test"]
    assert mailbox(raw, "From") == (collapsed(from_name), "ann@sender.test")
    assert mailbox(raw, "To") == (collapsed(to_name), "bob@example.test")
