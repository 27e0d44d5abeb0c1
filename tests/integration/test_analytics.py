"""Sequence analytics from real signals: sends, bounces, human opens and clicks, replies,
meetings, unsubscribes; the daily series; one enrollment's timeline."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cadenza.domain.enums import EventKind
from cadenza.domain.link_tokens import Purpose, sign
from cadenza.services.accounts.link_secret import link_secret
from cadenza.services.analytics import results as analytics
from cadenza.services.signals import tracking
from cadenza.services.signals.effects import Signal, record_signal
from cadenza.store.models import Message
from tests.conftest import enroll_ids

STEPS = [
    {"type": "email", "subject": "Hi {{ contact.firstname }}",
     "body": '<p>Hello, see <a href="https://example.test/plan">our plan</a></p>'},
    {"type": "email", "delay_days": 2, "thread_with_step": 1, "body": "<p>Bump</p>"},
]  # fmt: skip
HUMAN = "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Mail"
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel)"


@pytest.fixture
def sent(ctx, world, worker):
    """Four contacts, each sent step 1 of a tracked two-email sequence."""
    world.sequence = world.make_sequence(
        steps=STEPS, settings={"track_opens": True, "track_clicks": True}
    )
    contacts = world.contacts(4)
    ids = enroll_ids(world, contacts)
    worker.run_until(ctx.clock.now() + timedelta(hours=1))
    with ctx.db.read() as session:
        messages = {m.enrollment_id: m for m in session.scalars(select(Message))}
    ctx.clock.advance(timedelta(minutes=10))  # past the open grace period
    return [messages[i] for i in ids]


def open_it(ctx, message, agent=HUMAN):
    tracking.record_open(ctx, sign(link_secret(ctx), Purpose.OPEN, message.tracking_id), agent)


def click_it(ctx, message):
    token = sign(link_secret(ctx), Purpose.CLICK, message.tracking_id, 0)
    assert tracking.record_click(ctx, token, HUMAN) == "https://example.test/plan"


def test_counts_and_rates_per_sequence_and_step(ctx, world, worker, sent):
    ann, bob, cat, dan = sent
    open_it(ctx, ann)
    open_it(ctx, ann)  # twice: still one opened email
    open_it(ctx, bob)
    open_it(ctx, cat, SCANNER)  # recorded, flagged, not counted
    click_it(ctx, ann)
    record_signal(ctx, Signal(EventKind.REPLY, "reply-ann", message_pk=ann.id))
    record_signal(ctx, Signal(EventKind.MEETING_BOOKED, "meet-bob", message_pk=bob.id))
    record_signal(ctx, Signal(EventKind.BOUNCE, "bounce-dan", message_pk=dan.id, hard=True))
    worker.run_until(ctx.clock.now() + timedelta(days=4))  # step 2 to whoever is left

    report = analytics.sequence_report(ctx, world.sequence.id)

    first, second = report.steps
    assert (first[1].sent, first[1].bounced, first[1].delivered) == (4, 1, 3)
    assert (first[1].opened, first[1].clicked, first[1].replied) == (2, 1, 1)
    assert first[1].meetings_booked == 1
    assert first[1].rates["open_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert first[1].rates["bounce_rate"] == 0.25
    assert second[1].sent == report.counts.steps[1].sent  # those not replied nor bounced
    assert (report.outcomes.replied, report.outcomes.meetings_booked) == (1, 1)
    assert report.outcomes.sent == 4 + second[1].sent
    assert report.contacts_emailed == 4
    assert report.rates["reply_rate"] == 0.25
    assert report.counts.unenrolled_by_reason["replied"] == 1
    assert report.counts.unenrolled_by_reason["bounced"] == 1


def test_unsubscribes_count_per_contact_emailed(ctx, world, sent):
    ann = sent[0]
    tracking.unsubscribe(ctx, sign(link_secret(ctx), Purpose.UNSUBSCRIBE, ann.tracking_id))
    report = analytics.sequence_report(ctx, world.sequence.id)
    assert report.unsubscribed == 1 and report.rates["unsubscribe_rate"] == 0.25


def test_nothing_sent_gives_no_rates_not_zero(ctx, world):
    report = analytics.sequence_report(ctx, world.sequence.id)
    assert report.outcomes.sent == 0 and set(report.rates.values()) == {None}


def test_daily_series_buckets_by_utc_day(ctx, world, sent):
    open_it(ctx, sent[0])
    record_signal(ctx, Signal(EventKind.REPLY, "reply-next-day", message_pk=sent[1].id,
                              occurred_at=ctx.clock.now() + timedelta(days=1)))  # fmt: skip
    today = ctx.clock.now().date()
    days = analytics.daily_activity(ctx, world.sequence.id, days=3, today=today + timedelta(1))
    assert [d.day for d in days] == [today - timedelta(1), today, today + timedelta(1)]
    assert (days[1].enrolled, days[1].sent, days[1].opened, days[1].replied) == (4, 4, 1, 0)
    assert (days[2].replied, days[0].sent) == (1, 0)


def test_enrollment_timeline_in_order(ctx, world, sent):
    ann = sent[0]
    open_it(ctx, ann)
    click_it(ctx, ann)
    ctx.clock.advance(timedelta(minutes=1))
    record_signal(ctx, Signal(EventKind.REPLY, "reply-ann", message_pk=ann.id))

    timeline = analytics.enrollment_timeline(ctx, ann.enrollment_id)

    assert [e.kind for e in timeline] == [
        "enrolled",
        "sent",
        "open",
        "click",
        "reply",
        "unenrolled",
    ]
    assert timeline[1].step_position == 1 and timeline[1].detail == "Hi Ann"
    assert timeline[3].detail == "https://example.test/plan"
    assert timeline[-1].detail == "replied"
    assert [e.at for e in timeline] == sorted(e.at for e in timeline)
