"""Cal.com and Calendly booking webhooks (signed, no token) made `meeting_booked` signals,
on both databases; the signing secrets (admins); and the profile API (signature, link)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from cadenza.domain.inbound.bookings import sign_calcom, sign_calendly
from cadenza.services.signals import bookings
from cadenza.store.models import AppSecret, AuditEntry, EmailEvent
from tests.conftest import assert_error, enroll_ids
from tests.support.signals import enrollment

CALCOM_SECRET = "calcom-secret-0123456789"
CALENDLY_KEY = "calendly-signing-key-0123456789"
UNENROLL_ON_MEETING = [
    {"type": "email", "subject": "Hi", "body": "<p>Hello</p>"},
    {"type": "email", "delay_days": 2, "subject": "Again", "body": "<p>B</p>"},
]


def calcom_body(email: str, uid: str = "bk_1") -> bytes:
    return json.dumps({
        "triggerEvent": "BOOKING_CREATED", "createdAt": "2026-03-02T09:00:00.000Z",
        "payload": {"uid": uid, "title": "Intro call", "startTime": "2026-03-04T15:00:00Z",
                    "attendees": [{"email": email, "name": "Ann"}]},
    }).encode()  # fmt: skip


def calendly_body(
    email: str, uri: str = "https://api.calendly.com/scheduled_events/E1/invitees/I1"
):
    return json.dumps({
        "event": "invitee.created", "created_at": "2026-03-02T09:00:00.000000Z",
        "payload": {"email": email, "name": "Bob", "uri": uri,
                    "scheduled_event": {"name": "Demo", "start_time": "2026-03-05T10:00:00Z"}},
    }).encode()  # fmt: skip


@pytest.fixture
def secrets_set(ctx, api):
    admin = api.users["admin"].id
    bookings.set_secret(ctx, admin, bookings.BookingProvider.CALCOM, CALCOM_SECRET)
    bookings.set_secret(ctx, admin, bookings.BookingProvider.CALENDLY, CALENDLY_KEY)


def post_calcom(api, body: bytes, signature: str | None = None):
    headers = {"Content-Type": "application/json"}
    if signature is not False:
        headers["X-Cal-Signature-256"] = signature or sign_calcom(CALCOM_SECRET, body)
    return api.client.post("/api/v1/integrations/calcom", content=body, headers=headers)


def post_calendly(api, body: bytes, *, at: int, key: str = CALENDLY_KEY):
    headers = {"Calendly-Webhook-Signature": sign_calendly(key, body, at)}
    return api.client.post("/api/v1/integrations/calendly", content=body, headers=headers)


def event_count(ctx) -> int:
    with ctx.db.read() as session:
        return session.scalar(select(func.count()).select_from(EmailEvent))


def test_signed_bookings_unenroll_once_each(api, ctx, world, secrets_set):
    sequence = world.make_sequence(steps=UNENROLL_ON_MEETING, name="Meetings")
    ann, bob = world.contact("ann@corp.example"), world.contact("bob@corp.example")
    ann_id, bob_id = enroll_ids(world, [ann, bob], sequence=sequence)

    first = post_calcom(api, calcom_body("ANN@corp.example"))
    assert first.status_code == 201, first.text
    assert first.json()["unenrolled"] == [ann_id] and first.json()["matched"] is True
    assert enrollment(ctx, ann_id).reason == "meeting_booked"
    assert enrollment(ctx, ann_id).cause_event_id == first.json()["event_id"]
    replay = post_calcom(api, calcom_body("ANN@corp.example"))
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    assert replay.json()["event_id"] == first.json()["event_id"]

    now = int(ctx.clock.now().timestamp())
    booked = post_calendly(api, calendly_body("bob@corp.example"), at=now)
    assert booked.status_code == 201, booked.text
    assert booked.json()["unenrolled"] == [bob_id]
    assert enrollment(ctx, bob_id).state == "unenrolled"
    again = post_calendly(api, calendly_body("bob@corp.example"), at=now + 30)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert event_count(ctx) == 2
    with ctx.db.read() as session:
        kinds = {e.data["source"]: e.kind for e in session.scalars(select(EmailEvent))}
    assert kinds == {"calcom": "meeting_booked", "calendly": "meeting_booked"}


def test_refusals_unknown_contacts_and_other_events(api, ctx, world, secrets_set):
    """Forged, missing, stale signatures: 401 and nothing written; then the rest."""
    ann = world.contact("ann@corp.example")
    [ann_id] = enroll_ids(world, [ann])
    body = calcom_body("ann@corp.example")
    assert_error(post_calcom(api, body, sign_calcom("another-secret-000000", body)), 401,
                 "invalid_signature")  # fmt: skip
    assert_error(post_calcom(api, body, signature=False), 401, "invalid_signature")
    tampered = body.replace(b"bk_1", b"bk_2")
    assert_error(post_calcom(api, tampered, sign_calcom(CALCOM_SECRET, body)), 401,
                 "invalid_signature")  # fmt: skip

    now = int(ctx.clock.now().timestamp())
    late = post_calendly(api, calendly_body("ann@corp.example"), at=now - 600)
    assert_error(late, 401, "signature_expired")
    forged = post_calendly(api, calendly_body("ann@corp.example"), at=now, key="x" * 20)
    assert_error(forged, 401, "invalid_signature")
    malformed = api.client.post(
        "/api/v1/integrations/calendly", content=b"{}",
        headers={"Calendly-Webhook-Signature": "v1=abc"},
    )  # fmt: skip
    assert_error(malformed, 401, "invalid_signature")
    assert event_count(ctx) == 0 and enrollment(ctx, ann_id).state == "active"

    # An address no contact has, other event types, bad bodies, no secret at all.
    unknown = post_calcom(api, calcom_body("nobody@else.example", uid="bk_9"))
    assert unknown.status_code == 202, unknown.text
    assert unknown.json()["matched"] is False and "no matching contact" in unknown.json()["detail"]
    with ctx.db.read() as session:
        kept = session.get(EmailEvent, unknown.json()["event_id"])
    assert kept.contact_id is None and kept.data["unmatched"] == "no matching contact"
    assert kept.data["email"] == "nobody@else.example"
    ping = json.dumps({"triggerEvent": "PING", "payload": {}}).encode()
    assert post_calcom(api, ping).json()["ignored"] == "PING"
    no_uid = json.dumps({"triggerEvent": "BOOKING_CREATED", "payload": {"attendees": []}}).encode()
    assert_error(post_calcom(api, no_uid), 422, "validation_error")
    assert_error(post_calcom(api, b"not json"), 422, "validation_error")
    huge = b"{" + b" " * (300 * 1024) + b"}"
    assert_error(post_calcom(api, huge), 413, "body_too_large")
    assert event_count(ctx) == 1

    bookings.clear_secret(ctx, api.users["admin"].id, bookings.BookingProvider.CALCOM)
    refused = assert_error(post_calcom(api, calcom_body("x@y.example", uid="bk_3")), 401,
                           "invalid_signature")  # fmt: skip
    assert "no calcom signing secret" in refused["message"]


def test_secrets_are_admins_sealed_and_never_shown(api, ctx):
    path = "/integrations/booking-secrets/calendly"
    for role, status in (("member", 403), ("viewer", 403)):
        assert api.put(path, role=role, json={"secret": CALENDLY_KEY}).status_code == status
    saved = api.put(path, role="admin", json={"secret": CALENDLY_KEY})
    assert saved.status_code == 200 and saved.json()["configured"] is True
    assert CALENDLY_KEY not in saved.text
    listed = api.get("/integrations/booking-secrets", role="admin")
    assert {r["provider"]: r["configured"] for r in listed.json()} == {
        "calcom": False, "calendly": True,
    }  # fmt: skip
    assert CALENDLY_KEY not in listed.text
    with ctx.db.read() as session:
        stored = session.scalar(select(AppSecret.value).where(AppSecret.name.like("booking%")))
        audit = session.scalars(select(AuditEntry.data)).all()
    assert stored.startswith("sealed:v1:") and CALENDLY_KEY not in stored
    assert CALENDLY_KEY not in str(audit)
    assert_error(api.put(path, role="admin", json={"secret": "short"}), 422, "validation_error")
    assert api.delete(path, role="admin").json()["configured"] is False


def test_profile_api_sanitises_and_validates(api, ctx):
    hostile = (
        '<p onclick="steal()">Riley</p><script>alert(1)</script>'
        '<a href="javascript:alert(1)">x</a><img src="https://cdn.example/l.png">'
    )
    saved = api.patch("/me/profile", json={"signature_html": hostile,
                                           "meeting_link": "https://cal.com/riley"})  # fmt: skip
    assert saved.status_code == 200, saved.text
    signature = saved.json()["signature_html"]
    for bad in ("onclick", "<script", "alert", "javascript:"):
        assert bad not in signature
    assert "<p>Riley</p>" in signature and 'src="https://cdn.example/l.png"' in signature
    assert api.get("/me/profile").json()["meeting_link"] == "https://cal.com/riley"
    for link in ("javascript:alert(1)", "ftp://x.example", "https://", "not a url"):
        assert_error(api.patch("/me/profile", json={"meeting_link": link}), 422,
                     "validation_error")  # fmt: skip
    too_long = api.patch("/me/profile", json={"signature_html": "x" * 10_001})
    assert_error(too_long, 422, "validation_error")
    assert_error(api.patch("/me/profile", json={"other": 1}), 422, "validation_error")
    assert api.patch("/me/profile", json={"meeting_link": None}).json()["meeting_link"] is None
    other = api.users["other"].id
    refused = api.patch(f"/users/{other}/profile", json={"meeting_link": "https://a.example"})
    assert_error(refused, 403, "permission_denied")
    by_admin = api.patch(f"/users/{other}/profile", role="admin",
                         json={"meeting_link": "https://a.example/olive"})  # fmt: skip
    assert by_admin.json()["meeting_link"] == "https://a.example/olive"
    assert api.get("/me/profile", role="other").json()["meeting_link"] == "https://a.example/olive"
