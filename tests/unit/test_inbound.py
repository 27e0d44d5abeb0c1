"""Classification of real-shaped inbound mail: replies, auto-replies in four languages,
bounces as Postfix, Exim, Gmail and Exchange send them, and the return dates read."""

from __future__ import annotations

from datetime import date

import pytest

from cadenza.domain.inbound.autoreply import return_date
from cadenza.domain.inbound.classify import InboundKind, classify
from cadenza.domain.inbound.parse import parse
from tests.support.inbound_mail import inbound_mail

OURS = "<20260302090000.abc123@example.com>"
RECEIVED = date(2026, 3, 2)


def classified(name, **values):
    inbound = parse(inbound_mail(name, message_id=OURS, **values))
    return inbound, classify(inbound, RECEIVED)


@pytest.mark.parametrize("name", ["reply_gmail", "reply_outlook", "reply_new_thread"])
def test_replies_written_by_people_are_messages(name):
    inbound, verdict = classified(name)
    assert verdict.kind is InboundKind.MESSAGE
    assert inbound.sender == "ann@corp.example"


def test_reply_threading_ids_are_read_most_direct_first():
    gmail, _ = classified("reply_gmail")
    assert gmail.referenced_ids == (OURS,)
    outlook, _ = classified("reply_outlook")  # no References at all
    assert outlook.referenced_ids == (OURS,) and outlook.references == ()
    assert "rufen Sie mich" in outlook.text  # an HTML-only body, read as text
    fresh, _ = classified("reply_new_thread")
    assert fresh.referenced_ids == ()


@pytest.mark.parametrize(
    ("name", "back"),
    [
        ("ooo_en", date(2026, 3, 16)),  # "until Friday, March 13 … back on Monday, March 16th"
        ("ooo_it", date(2026, 3, 10)),  # "fino al 9 marzo 2026 compreso"
        ("ooo_de", date(2026, 3, 23)),  # "bis zum 20.03.2026 … Ab dem 23. März wieder"
        ("ooo_fr", date(2026, 3, 7)),  # "jusqu'au 6 mars inclus"
        ("ooo_no_date", None),
    ],
)
def test_out_of_office_replies_and_their_return_dates(name, back):
    _, verdict = classified(name)
    assert verdict.kind is InboundKind.AUTO_REPLY
    assert verdict.return_date == back


@pytest.mark.parametrize(
    ("name", "status", "standard"),
    [
        ("dsn_postfix", "5.1.1", True),
        ("dsn_exim", "5.1.1", False),
        ("dsn_gmail", "5.1.1", True),
        ("dsn_exchange", "5.1.10", True),
    ],
)
def test_hard_bounces_name_the_recipient_status_and_our_message(name, status, standard):
    _, verdict = classified(name, contact="gone@corp.example")
    assert verdict.kind is InboundKind.BOUNCE
    bounce = verdict.bounce
    assert bounce.hard and bounce.status == status and bounce.standard is standard
    assert [r.address for r in bounce.recipients] == ["gone@corp.example"]
    assert bounce.original_message_id == OURS


def test_a_delayed_delivery_is_a_soft_bounce():
    _, verdict = classified("dsn_delayed")
    assert verdict.kind is InboundKind.BOUNCE
    assert not verdict.bounce.hard and verdict.bounce.status == "4.4.1"
    assert verdict.bounce.recipients[0].action == "delayed"


@pytest.mark.parametrize("name", ["unrelated_newsletter", "unrelated_colleague"])
def test_ordinary_mail_is_neither_bounce_nor_auto_reply(name):
    _, verdict = classified(name)
    assert verdict.kind is InboundKind.MESSAGE


@pytest.mark.parametrize(
    ("text", "back"),
    [
        ("I'm back on 10 March.", date(2026, 3, 10)),
        ("Out until March 9, 2026.", date(2026, 3, 10)),
        ("Away from March 2 to March 9, back on March 10th.", date(2026, 3, 10)),
        ("Rientrerò in ufficio il 12 marzo.", date(2026, 3, 12)),
        ("Sono in ferie dal 2 al 13 marzo.", date(2026, 3, 14)),
        ("Ich bin ab dem 16.03. wieder im Büro.", date(2026, 3, 16)),
        ("Je serai de retour le lundi 9 mars.", date(2026, 3, 9)),
        ("Back 2026-03-11.", date(2026, 3, 11)),
        ("Back on 5 January.", None),  # ten months ahead: not believed
        ("I was away on 1 March.", None),  # in the past
        ("Call me at 10.30 tomorrow.", None),  # a time, not a date
        ("No dates here.", None),
    ],
)
def test_return_dates_in_four_languages(text, back):
    assert return_date(text, RECEIVED) == back


def test_broken_mail_does_not_raise():
    inbound = parse(b"From: <<<\r\nDate: yesterday\r\nSubject: =?bad?q?x?=\r\n\r\n\xff\xfe")
    assert inbound.sender is None and inbound.date is None
    assert classify(inbound, RECEIVED).kind is InboundKind.MESSAGE
