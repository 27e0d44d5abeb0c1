"""Timed signals run in the worker's tick, not in the inbox poller (issue 14 §2): an
out-of-office pause that came through the events API (no inbox read at all) ends at
its return date on the worker's own clock, and the follow-up goes. Both databases."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from cadenza.domain.enums import EventKind
from cadenza.services.signals.effects import Signal, record_signal
from cadenza.store.models import Enrollment, Message
from tests.support.signals import send_first_emails


def test_an_out_of_office_pause_ends_in_the_tick_with_no_inbox_watched(ctx, world, worker):
    [(_, enrollment_id, first)] = send_first_emails(ctx, world, worker, ["ann"]).values()
    back = (ctx.clock.now() + timedelta(days=7)).date()
    record_signal(ctx, Signal(EventKind.AUTO_REPLY, "ooo-1", message_pk=first.id, return_date=back))
    with ctx.db.read() as session:
        paused = session.get(Enrollment, enrollment_id)
        assert paused.state == "paused" and paused.resume_at is not None
        resume_at = paused.resume_at
    assert resume_at.date() >= back
    # The worker alone (no inbox poller exists in this test) runs up to past that day.
    worker.run_until(
        datetime.combine(back + timedelta(days=8), datetime.min.time(), resume_at.tzinfo)
    )
    with ctx.db.read() as session:
        assert session.get(Enrollment, enrollment_id).state in ("active", "finished")
        sent = session.scalars(
            select(Message)
            .where(Message.enrollment_id == enrollment_id, Message.status == "sent")
            .order_by(Message.sent_at)  # PostgreSQL returns rows in no set order
        ).all()
    assert len(sent) == 2 and sent[1].sent_at >= resume_at
