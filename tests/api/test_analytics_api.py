"""Analytics over HTTP: the sequence report with its daily series, enrollment timelines."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cadenza.domain.enums import EventKind
from cadenza.services.signals.effects import Signal, record_signal
from cadenza.store.models import Message
from tests.conftest import MISSING_ID, assert_error, enroll_ids


@pytest.fixture
def replied(ctx, world, worker):
    ids = enroll_ids(world, world.contacts(2))
    worker.run_until(ctx.clock.now() + timedelta(hours=1))
    with ctx.db.read() as session:
        first = session.query(Message).filter(Message.enrollment_id == ids[0]).one()
    record_signal(ctx, Signal(EventKind.REPLY, "reply-1", message_pk=first.id))
    return ids


def test_sequence_analytics_report_and_daily_series(api, world, replied):
    response = api.get(f"/sequences/{world.sequence.id}/analytics?days=7")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["enrolled"] == 2 and body["contacts_emailed"] == 2
    assert body["outcomes"]["sent"] == 2 and body["outcomes"]["replied"] == 1
    assert body["rates"]["reply_rate"] == 0.5 and body["outcomes"]["rates"]["open_rate"] == 0
    assert body["unenrolled_by_reason"] == {"replied": 1}
    assert [s["position"] for s in body["steps"]] == [1, 2, 3]
    assert body["steps"][0]["sent"] == 2 and body["steps"][0]["replied"] == 1
    assert len(body["daily"]) == 7 and body["daily"][-1]["sent"] == 2
    assert body["daily"][-1]["day"] == api.ctx.clock.now().date().isoformat()


@pytest.mark.parametrize("query", ["days=0", "days=367", "days=x"])
def test_bad_ranges_are_refused(api, world, query):
    assert_error(
        api.get(f"/sequences/{world.sequence.id}/analytics?{query}"), 422, "validation_error"
    )


def test_unknown_sequence_and_no_token(api):
    assert_error(api.get(f"/sequences/{MISSING_ID}/analytics"), 404, "sequence_not_found")
    assert_error(api.get("/sequences/1/analytics", role=None), 401, "unauthenticated")


def test_enrollment_events_oldest_first_and_members_see_only_their_own(api, replied):
    events = api.get(f"/enrollments/{replied[0]}/events")
    assert events.status_code == 200, events.text
    assert [e["kind"] for e in events.json()] == ["enrolled", "sent", "reply", "unenrolled"]
    assert events.json()[-1]["detail"] == "replied"
    assert api.get(f"/enrollments/{replied[0]}/events", role="viewer").status_code == 200
    assert_error(
        api.get(f"/enrollments/{replied[0]}/events", role="other"), 404, "enrollment_not_found"
    )
