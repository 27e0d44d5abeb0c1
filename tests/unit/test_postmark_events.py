"""Postmark's bounce and complaint webhooks read into our terms (domain/inbound/postmark.py),
field by field: what becomes the event, what is kept for the people reading it, and
what is refused. tests/api/test_events_api.py posts the same payloads over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cadenza.domain.enums import EventKind
from cadenza.domain.inbound.postmark import ProviderEvent, read_postmark

OURS = "<20260302090000.abc123@example.com>"


def bounce(**fields) -> dict:
    payload = {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Email": " Gone@Corp.example ",
        "BouncedAt": "2026-03-02T09:00:05Z",
        "Description": "The server was unable to deliver your message.",
        "Details": "smtp;550 5.1.1 The email account does not exist.",
        "Inactive": True,
        "Content": f"Return-Path: <>\nMessage-ID: {OURS}\nSubject: Hi Ann\n",
    }
    payload.update(fields)
    return {name: value for name, value in payload.items() if value is not None}


def test_a_hard_bounce_is_read_whole():
    assert read_postmark(bounce()) == ProviderEvent(
        kind=EventKind.BOUNCE,
        provider_id="Bounce:4323372036854775807",
        email="Gone@Corp.example",
        hard=True,
        message_id=OURS,  # ours, from the bounce's text; not Postmark's MessageID
        occurred_at=datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC),
        data={
            "source": "postmark",
            "type": "HardBounce",
            "type_code": 1,
            "description": "The server was unable to deliver your message.",
            "details": "smtp;550 5.1.1 The email account does not exist.",
            "postmark_message_id": "883953f4-6105-42a2-a16a-77a8eac79483",
        },
    )


@pytest.mark.parametrize(
    ("fields", "hard"),
    [
        ({"Type": "SoftBounce", "Inactive": False}, False),
        ({"Type": "SoftBounce", "Inactive": None}, False),
        ({"Type": "SoftBounce", "Inactive": True}, True),  # Postmark stopped sending to it
        ({"Type": "BadEmailAddress", "Inactive": False}, True),
        ({"Type": "Transient", "Inactive": "true"}, False),  # only the JSON true counts
        ({"RecordType": "SpamComplaint", "Type": "SpamComplaint", "Inactive": False}, True),
    ],
)
def test_what_makes_an_event_hard(fields, hard):
    assert read_postmark(bounce(**fields)).hard is hard


def test_a_complaint_is_its_own_kind_with_its_own_id():
    event = read_postmark(bounce(RecordType="SpamComplaint", Type="SpamComplaint"))
    assert event.kind is EventKind.COMPLAINT
    assert event.provider_id == "SpamComplaint:4323372036854775807"


@pytest.mark.parametrize("record_type", ["Delivery", "Open", "Click", "", None])
def test_record_types_we_do_not_act_on_are_ignored(record_type):
    assert read_postmark(bounce(RecordType=record_type)) is None


@pytest.mark.parametrize(
    "fields",
    [{"ID": None}, {"ID": ""}, {"Email": None}, {"Email": "nobody"}, {"Email": ["a@b.example"]}],
)
def test_a_bounce_without_its_id_or_address_is_refused(fields):
    """The text is the API's 422 message to whoever set up the webhook."""
    refusal = r"^a Postmark bounce or complaint needs its ID and Email$"
    with pytest.raises(ValueError, match=refusal):
        read_postmark(bounce(**fields))


def test_an_id_of_zero_is_still_an_id():
    assert read_postmark(bounce(ID=0)).provider_id == "Bounce:0"


@pytest.mark.parametrize(
    "fields",
    [{"Content": None}, {"Content": ""}, {"Content": 12}, {"Content": "Subject: no id here"}],
)
def test_without_our_message_id_in_its_content_the_event_names_no_message(fields):
    assert read_postmark(bounce(**fields)).message_id is None


def test_missing_texts_are_none_and_long_ones_are_cut():
    event = read_postmark(bounce(Type=None, Description=None, Details="x" * 600))
    assert event.data["type"] is None and event.data["description"] is None
    assert event.data["details"] == "x" * 500
    assert read_postmark(bounce(Description="y" * 501)).data["description"] == "y" * 500
    assert read_postmark(bounce(Details=None)).data["details"] is None


@pytest.mark.parametrize(
    ("bounced_at", "occurred_at"),
    [
        ("2026-03-02T10:00:05+01:00", datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC)),
        ("2026-03-02T09:00:05", None),  # no zone: not guessed
        ("yesterday", None),
        (1772442005, None),
        (None, None),
    ],
)
def test_when_it_happened_is_believed_only_with_a_zone(bounced_at, occurred_at):
    assert read_postmark(bounce(BouncedAt=bounced_at)).occurred_at == occurred_at
