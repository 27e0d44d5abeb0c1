"""Reading one received message (domain/inbound/parse.py): its headers, and which of its
parts is the text classification reads. Messages are built with the stdlib `email`
package, as a mail client would write them; malformed ones are written out by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from cadenza.domain.inbound.parse import parse
from cadenza.domain.message import html_to_text

OURS = "<20260302090000.abc123@example.com>"


def reply(**headers: str) -> EmailMessage:
    message = EmailMessage()
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Sounds good.")
    return message


def test_a_replys_headers_are_read():
    message = reply(
        From="Ann Example <Ann@Corp.Example>",
        To="rep@example.com",
        Subject="Re: Hi Ann, and welcome",
        Date="Mon, 02 Mar 2026 10:15:00 +0100",
        Message_ID="<a.1@corp.example>",
        In_Reply_To=OURS,
        References=f"<first@example.com> {OURS}",
    )
    folded = message.as_bytes().replace(b"Ann, and", b"Ann,\n and")  # as long lines are
    inbound = parse(folded)
    assert inbound.sender == "ann@corp.example"  # the address, lower-cased
    assert inbound.subject == "Re: Hi Ann, and welcome"  # a folded subject unfolded
    assert inbound.date == datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
    assert inbound.message_id == "<a.1@corp.example>"
    assert inbound.in_reply_to == (OURS,)
    assert inbound.references == ("<first@example.com>", OURS)
    assert inbound.referenced_ids == (OURS, "<first@example.com>")  # most direct first
    assert inbound.text == "Sounds good.\n"


def test_a_message_with_only_references_still_names_what_it_answers():
    inbound = parse(reply(From="ann@corp.example", References=OURS).as_bytes())
    assert inbound.in_reply_to == () and inbound.references == (OURS,)
    assert inbound.referenced_ids == (OURS,)


def test_missing_headers_read_as_empty():
    inbound = parse(b"\r\nHello\r\n")
    assert inbound.sender is None and inbound.date is None and inbound.message_id is None
    assert inbound.subject == "" and inbound.header("X-Anything") == ""
    assert inbound.in_reply_to == () and inbound.references == ()
    assert inbound.text == "Hello\r\n"


def test_a_date_without_a_known_zone_is_not_guessed():
    """`-0000` says the zone is unknown (RFC 5322): no instant rather than a wrong one."""
    inbound = parse(reply(Date="Mon, 02 Mar 2026 10:15:00 -0000").as_bytes())
    assert inbound.date is None


def test_a_sender_address_the_header_parser_chokes_on_reads_as_no_sender():
    inbound = parse(b"From: ann@\r\nSubject: Re: Hi\r\n\r\nYes\r\n")
    assert inbound.sender is None and inbound.subject == "Re: Hi"


# Found by mutation testing: the stdlib header parser raises UnboundLocalError and
# AttributeError on these; parse() reads such a header raw instead.
@pytest.mark.parametrize("header", ["Message-ID: <a@[", "From: <a@["])
def test_a_broken_address_in_a_header_does_not_raise(header):
    inbound = parse(f"{header}\r\nSubject: Re: Hi\r\n\r\nYes\r\n".encode())
    assert inbound.subject == "Re: Hi"


def test_a_from_header_the_parser_fails_on_is_read_as_written():
    """The fallback reads the header itself (not another one, not nothing): a reply
    whose From also carries a broken address keeps its real sender for matching."""
    raw = b"From: Ann <ann@corp.example>, <a@[\r\nSubject: Re: Hi\r\n\r\nYes\r\n"
    assert parse(raw).sender == "ann@corp.example"


def test_the_text_is_the_messages_own_inline_text_parts_joined():
    """Attachments (a file name, or not text) are not read, wherever they stand."""
    message = EmailMessage()
    message["From"] = "ann@corp.example"
    message.set_content("first")
    message.add_attachment(b"\x89PNG", maintype="image", subtype="png")  # before the text
    message.add_attachment("second", subtype="plain", disposition="inline")
    message.add_attachment("a log file", subtype="plain", filename="log.txt")
    assert parse(message.as_bytes()).text == "first\n\nsecond\n"


def test_an_html_only_message_is_read_as_plain_text():
    message = EmailMessage()
    message.set_content("<p>Call me <b>tomorrow</b></p>", subtype="html")
    message.add_attachment("<p>and Friday</p>", subtype="html", disposition="inline")
    parts = ["<p>Call me <b>tomorrow</b></p>\n", "<p>and Friday</p>\n"]
    text = parse(message.as_bytes()).text
    assert text == "\n".join(html_to_text(part) for part in parts)
    assert "<p>" not in text and "Call me tomorrow" in text


def test_an_attached_message_and_a_delivery_report_are_not_the_text():
    """A bounce's copy of what we sent, or a forwarded mail, is not what this one says."""
    forwarded = EmailMessage()
    forwarded["Subject"] = "the original"
    forwarded.set_content("words of the attached message")
    message = EmailMessage()
    message.set_content("before")
    message.add_attachment(forwarded)  # message/rfc822
    message.add_attachment("after", subtype="plain", disposition="inline")
    assert parse(message.as_bytes()).text == "before\n\nafter\n"

    report = (
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nA notice.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mail.example.com\r\n\r\n"
        "Final-Recipient: rfc822; gone@corp.example\r\nStatus: 5.1.1\r\n"
        "--B--\r\n"
    )
    assert parse(report.encode()).text == "A notice."


def test_a_part_in_an_unknown_charset_is_read_as_utf8_with_replacements():
    raw = (
        b"From: ann@corp.example\r\nContent-Type: text/plain; charset=x-unknown\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xc3\xa9 \xff\r\n"
    )
    assert parse(raw).text == "caf\u00e9 \ufffd\r\n"
