"""POST /api/v1/events and the Postmark webhook: each event applied once, bad input refused
with nothing written."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.store.models import AuditEntry, Contact, EmailEvent
from tests.conftest import assert_error
from tests.support.signals import enrollment, send_first_emails


@pytest.fixture
def sent(ctx, world, worker):
    return send_first_emails(ctx, world, worker, ["ann", "bob"])


def counts(ctx):
    with ctx.db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(EmailEvent)),
            session.scalar(select(func.count()).select_from(AuditEntry)),
        )


def contact(ctx, contact_id) -> Contact:
    with ctx.db.read() as session:
        return session.get(Contact, contact_id)


def test_a_reply_by_message_id_unenrolls_and_a_resend_changes_nothing(api, ctx, sent):
    _, enrollment_id, message = sent["ann"]
    body = {"type": "reply", "event_id": "crm-1", "message_id": message.message_id}
    first = api.post("/events", json=body)
    assert first.status_code == 201, first.text
    assert first.json() | {"event_id": 0} == {
        "event_id": 0, "duplicate": False, "matched": True,
        "unenrolled": [enrollment_id], "paused": [], "ignored": None,
    }  # fmt: skip
    shown = api.get(f"/enrollments/{enrollment_id}").json()
    assert shown["state"] == "unenrolled" and shown["reason"] == "replied"
    assert shown["cause_event_id"] == first.json()["event_id"]
    before = counts(ctx)

    again = api.post("/events", json={**body, "data": {"different": True}})
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["event_id"] == first.json()["event_id"]
    assert counts(ctx) == before


def test_meeting_booked_by_contact_email(api, ctx, sent):
    ann, enrollment_id, _ = sent["ann"]
    body = {"type": "meeting_booked", "event_id": "cal-7", "contact_email": " ANN@corp.example"}
    response = api.post("/events", json=body)
    assert response.status_code == 201 and response.json()["unenrolled"] == [enrollment_id]
    assert enrollment(ctx, enrollment_id).reason == "meeting_booked"
    with ctx.db.read() as session:
        event = session.scalar(select(EmailEvent))
        assert event.kind == "meeting_booked" and event.contact_id == ann.id
        assert event.data["source"] == "api" and event.data["event_id"] == "cal-7"


def test_bounces_soft_recorded_hard_marks_the_contact(api, ctx, world, sent):
    ann, enrollment_id, message = sent["ann"]
    soft = {"type": "bounce", "event_id": "b-1", "message_id": message.message_id,
            "bounce_type": "soft"}  # fmt: skip
    assert api.post("/events", json=soft).json()["unenrolled"] == []
    assert contact(ctx, ann.id).bounced_at is None
    hard = {**soft, "event_id": "b-2", "bounce_type": "hard"}
    assert api.post("/events", json=hard).json()["unenrolled"] == [enrollment_id]
    assert contact(ctx, ann.id).bounced_at == ctx.clock.now()
    [refused] = enroll(
        ctx, EnrollRequest(world.sequence.id, world.user.id, [ContactRequest(ann.id)])
    )
    assert refused.code == "bounced"


@pytest.mark.parametrize(("kind", "reason"), [("unsubscribe", "unsubscribed"),
                                               ("complaint", "complained")])  # fmt: skip
def test_unsubscribe_and_complaint_mark_the_contact_unsubscribed(api, ctx, sent, kind, reason):
    bob, enrollment_id, _ = sent["bob"]
    body = {"type": kind, "event_id": "u-1", "contact_email": bob.email}
    assert api.post("/events", json=body).json()["unenrolled"] == [enrollment_id]
    assert enrollment(ctx, enrollment_id).reason == reason
    assert contact(ctx, bob.id).unsubscribed_at is not None


BAD_EVENTS = [
    ({"type": "opened", "event_id": "x", "contact_email": "ann@corp.example"}, 422,
     "validation_error"),
    ({"type": "auto_reply", "event_id": "x", "contact_email": "ann@corp.example"}, 422,
     "validation_error"),
    ({"type": "reply", "contact_email": "ann@corp.example"}, 422, "validation_error"),
    ({"type": "reply", "event_id": "", "contact_email": "ann@corp.example"}, 422,
     "validation_error"),
    ({"type": "reply", "event_id": "x"}, 422, "validation_error"),
    ({"type": "reply", "event_id": "x", "message_id": "not-an-id"}, 422, "validation_error"),
    ({"type": "reply", "event_id": "x", "message_id": "<nope@cadenza.example>"}, 404,
     "not_found"),
    ({"type": "reply", "event_id": "x", "contact_email": "who@corp.example"}, 404,
     "contact_not_found"),
    ({"type": "reply", "event_id": "x", "contact_email": "ann@corp.example",
      "occurred_at": "2026-03-02T09:00:00"}, 422, "validation_error"),
    ({"type": "reply", "event_id": "x", "contact_email": "ann@corp.example", "extra": 1}, 422,
     "validation_error"),
    ({"type": "bounce", "event_id": "x", "contact_email": "ann@corp.example",
      "bounce_type": "medium"}, 422, "validation_error"),
    ({"type": "reply", "event_id": "x\x00", "contact_email": "ann@corp.example"}, 422,
     "validation_error"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "code"), BAD_EVENTS)
def test_bad_events_are_refused_and_write_nothing(api, ctx, sent, body, status, code):
    before = counts(ctx)
    assert_error(api.post("/events", json=body), status, code)
    assert counts(ctx) == before
    assert enrollment(ctx, sent["ann"][1]).state == "active"


def test_events_need_a_token_and_a_writer(api, sent):
    body = {"type": "reply", "event_id": "x", "contact_email": "ann@corp.example"}
    assert_error(api.post("/events", role=None, json=body), 401, "unauthenticated")
    assert_error(api.post("/events", role="viewer", json=body), 403, "permission_denied")
    assert_error(api.post("/events/postmark", role=None, json={}), 401, "unauthenticated")


# --- Postmark -----------------------------------------------------------------------------


def postmark_bounce(email, **fields):
    """A Postmark bounce webhook body, as documented by Postmark."""
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, "
        "mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": email,
        "From": "rep@example.com",
        "BouncedAt": "2026-03-02T09:05:00Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Hi Ann",
        "Content": "",
        **fields,
    }


def test_postmark_hard_bounce_with_our_message_id_in_its_content(api, ctx, sent):
    ann, enrollment_id, message = sent["ann"]
    content = f"Return-Path: <>\nMessage-ID: {message.message_id}\nSubject: Hi Ann\n"
    body = postmark_bounce(ann.email, Content=content)
    response = api.post("/events/postmark", json=body, role="admin")
    assert response.status_code == 201 and response.json()["unenrolled"] == [enrollment_id]
    assert contact(ctx, ann.id).bounced_at is not None
    with ctx.db.read() as session:
        event = session.scalar(select(EmailEvent))
        assert event.message_id == message.id and event.dedupe_key.startswith("postmark:Bounce:")
        assert event.data["type"] == "HardBounce" and event.data["hard"] is True
        assert event.occurred_at.isoformat() == "2026-03-02T09:05:00+00:00"
    before = counts(ctx)
    assert api.post("/events/postmark", json=body, role="admin").json()["duplicate"] is True
    assert counts(ctx) == before


def test_postmark_soft_bounce_complaint_ignored_and_unknown(api, ctx, sent):
    bob, enrollment_id, _ = sent["bob"]
    soft = postmark_bounce(bob.email, ID=1, Type="SoftBounce", TypeCode=4096, Inactive=False)
    assert api.post("/events/postmark", json=soft, role="admin").json()["unenrolled"] == []
    assert contact(ctx, bob.id).bounced_at is None
    complaint = postmark_bounce(bob.email, ID=2, RecordType="SpamComplaint", Type="SpamComplaint")
    answered = api.post("/events/postmark", json=complaint, role="admin")
    assert answered.json()["unenrolled"] == [enrollment_id]
    assert enrollment(ctx, enrollment_id).reason == "complained"

    delivered = api.post("/events/postmark", json={"RecordType": "Delivery", "ID": 3}, role="admin")
    assert delivered.status_code == 200 and delivered.json()["ignored"] == "Delivery"
    unknown = api.post(
        "/events/postmark", json=postmark_bounce("who@else.example", ID=4), role="admin"
    )
    assert unknown.status_code == 201 and unknown.json()["matched"] is False


@pytest.mark.parametrize(
    "body",
    [
        {"RecordType": "Bounce", "ID": 9},
        {"RecordType": "Bounce", "Email": "ann@corp.example"},
        {"RecordType": "Bounce", "ID": 9, "Email": 42},
    ],
)
def test_postmark_bounces_without_id_or_email_are_refused(api, ctx, sent, body):
    before = counts(ctx)
    assert_error(api.post("/events/postmark", json=body, role="admin"), 422, "validation_error")
    assert counts(ctx) == before


def test_a_complaint_causes_an_unsubscribe_shown_and_undone_with_it(api, ctx, sent):
    bob, enrollment_id, _ = sent["bob"]
    body = {"RecordType": "SpamComplaint", "ID": 5, "Type": "SpamComplaint", "Email": bob.email}
    complaint_id = api.post("/events/postmark", json=body, role="admin").json()["event_id"]
    [unsubscribe] = api.get("/events?kind=unsubscribe", role="admin").json()["results"]
    [complaint] = api.get("/events?kind=complaint", role="admin").json()["results"]
    assert complaint["id"] == complaint_id and complaint["cause_event_id"] is None
    assert unsubscribe["cause_event_id"] == complaint_id
    assert (unsubscribe["contact_id"], unsubscribe["source"]) == (bob.id, "postmark")
    assert enrollment(ctx, enrollment_id).cause_event_id == unsubscribe["id"]

    undone = api.post(f"/events/{complaint_id}/revoke", json={"reason": "x"}, role="admin")
    assert undone.json()["unsubscribed_cleared"] is True  # its unsubscribe went with it
    assert contact(ctx, bob.id).unsubscribed_at is None
    [unsubscribe] = api.get("/events?kind=unsubscribe", role="admin").json()["results"]
    assert unsubscribe["revoked_at"] is not None
