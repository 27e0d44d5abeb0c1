"""Who may post events about whom, integration tokens limited to events, and an admin
undoing a complaint or unsubscribe posted by mistake — with an audit entry."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cadenza.services.accounts.users import create_token
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.store.models import AuditEntry, Contact, EmailEvent
from tests.conftest import assert_error
from tests.support.signals import enrollment, send_first_emails


@pytest.fixture
def sent(ctx, world, worker):
    return send_first_emails(ctx, world, worker, ["ann", "bob"])


@pytest.fixture
def olives(api, ctx, world, worker):
    """A contact enrolled by Olive, another member, from her own mailbox; step 1 sent."""
    from datetime import timedelta

    from cadenza.store.models import Message

    cy = world.contact("cy@corp.example", firstname="Cy")
    [result] = enroll(
        ctx,
        EnrollRequest(
            world.sequence.id, api.users["other"].id, [ContactRequest(cy.id)],
            mailbox_id=api.other_mailbox.id,
        ),
    )  # fmt: skip
    assert result.ok, result
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    with ctx.db.read() as session:
        message = session.scalar(select(Message).where(Message.contact_id == cy.id))
    return cy, result.enrollment_id, message


def event_count(ctx) -> int:
    with ctx.db.read() as session:
        return session.scalar(select(func.count()).select_from(EmailEvent))


def contact(ctx, contact_id) -> Contact:
    with ctx.db.read() as session:
        return session.get(Contact, contact_id)


def test_a_member_cannot_unsubscribe_another_members_contact(api, ctx, sent, olives):
    cy, enrollment_id, message = olives
    before = event_count(ctx)
    for body in (
        {"type": "unsubscribe", "event_id": "u-1", "contact_email": cy.email},
        {"type": "complaint", "event_id": "u-2", "message_id": message.message_id},
        {"type": "bounce", "event_id": "u-3", "message_id": message.message_id},
    ):
        assert_error(api.post("/events", json=body, role="member"), 403, "permission_denied")
    assert event_count(ctx) == before
    assert contact(ctx, cy.id).unsubscribed_at is None and contact(ctx, cy.id).bounced_at is None
    assert enrollment(ctx, enrollment_id).state == "active"
    # Olive may, about her own contact; and the member about theirs.
    body = {"type": "unsubscribe", "event_id": "u-4", "contact_email": cy.email}
    assert api.post("/events", json=body, role="other").status_code == 201
    ann = sent["ann"][0]
    body = {"type": "reply", "event_id": "u-5", "contact_email": ann.email}
    assert api.post("/events", json=body, role="member").status_code == 201


def test_postmark_speaks_with_an_admins_authority(api, sent):
    body = {"RecordType": "SpamComplaint", "ID": 1, "Email": sent["ann"][0].email}
    assert_error(api.post("/events/postmark", json=body, role="member"), 403, "permission_denied")


def test_an_integration_token_posts_events_and_nothing_else(api, ctx, sent, olives):
    created = api.post("/integration-tokens", json={"name": "crm"}, role="admin")
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert created.json()["scopes"] == ["events"]
    headers = {"Authorization": f"Bearer {token}"}
    cy = olives[0]
    body = {"type": "meeting_booked", "event_id": "cal-1", "contact_email": cy.email}
    posted = api.client.post("/api/v1/events", json=body, headers=headers)
    assert posted.status_code == 201 and posted.json()["unenrolled"] == [olives[1]]
    for method, path in [
        ("GET", "/api/v1/contacts"),
        ("GET", "/api/v1/events"),
        ("POST", "/api/v1/integration-tokens"),
        ("POST", f"/api/v1/events/{posted.json()['event_id']}/revoke"),
        ("GET", "/api/v1/webhooks"),
    ]:
        refused = api.client.request(method, path, headers=headers, json={"name": "x"})
        assert_error(refused, 403, "permission_denied")
    [listed] = api.get("/integration-tokens", role="admin").json()
    assert listed["prefix"] == token[:8] and "token" not in listed
    gone = api.delete(f"/integration-tokens/{listed['id']}", role="admin")
    assert gone.status_code == 200 and gone.json()["revoked_at"] is not None
    again = api.client.post("/api/v1/events", json={**body, "event_id": "cal-2"}, headers=headers)
    assert_error(again, 401, "unauthenticated")


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_only_admins_create_integration_tokens(api, ctx, role):
    assert_error(
        api.post("/integration-tokens", json={"name": "crm"}, role=role), 403, "permission_denied"
    )
    from cadenza.domain.errors import CadenzaError

    with pytest.raises(CadenzaError) as refused:
        create_token(ctx, api.users[role].id, "crm", scopes=["events"])
    assert refused.value.code == "permission_denied"
    assert_error(
        api.post("/integration-tokens", json={"name": "x", "scopes": ["all"]}, role="admin"),
        422,
        "validation_error",
    )


def test_an_admin_undoes_a_mistaken_unsubscribe_with_an_audit_entry(api, ctx, world, sent):
    bob, enrollment_id, _ = sent["bob"]
    body = {"type": "unsubscribe", "event_id": "oops", "contact_email": bob.email}
    event_id = api.post("/events", json=body).json()["event_id"]
    assert contact(ctx, bob.id).unsubscribed_at is not None

    listed = api.get("/events?kind=unsubscribe", role="admin").json()["results"]
    assert [e["id"] for e in listed] == [event_id] and listed[0]["source"] == "api"
    assert_error(api.get("/events", role="member"), 403, "permission_denied")
    reason = {"reason": "the CRM sent the wrong contact"}
    assert_error(api.post(f"/events/{event_id}/revoke", json=reason), 403, "permission_denied")

    undone = api.post(f"/events/{event_id}/revoke", json=reason, role="admin")
    assert undone.status_code == 200, undone.text
    assert undone.json() == {
        "event_id": event_id, "contact_id": bob.id,
        "unsubscribed_cleared": True, "bounced_cleared": False,
    }  # fmt: skip
    assert contact(ctx, bob.id).unsubscribed_at is None
    assert enrollment(ctx, enrollment_id).state == "unenrolled"  # ended stays ended
    [again] = enroll(ctx, EnrollRequest(world.sequence.id, world.user.id, [ContactRequest(bob.id)]))
    assert again.ok, again  # the contact may be enrolled again
    with ctx.db.read() as session:
        audit = session.scalar(select(AuditEntry).where(AuditEntry.action == "event.revoke"))
        row = session.get(EmailEvent, event_id)
    assert audit.actor_id == api.users["admin"].id and audit.subject_id == event_id
    assert row.revoked_at == ctx.clock.now() and row.data["revoked"]["reason"] == reason["reason"]
    revoked = api.get("/events?kind=unsubscribe", role="admin").json()["results"][0]
    assert revoked["revoked_at"] is not None
    assert_error(api.post(f"/events/{event_id}/revoke", json=reason, role="admin"), 409,
                 "invalid_state")  # fmt: skip


def test_undoing_one_of_two_unsubscribes_keeps_the_contact_unsubscribed(api, ctx, sent):
    bob = sent["bob"][0]
    ids = [
        api.post("/events", json={"type": kind, "event_id": f"e-{kind}",
                                  "contact_email": bob.email}).json()["event_id"]
        for kind in ("unsubscribe", "complaint")
    ]  # fmt: skip
    undone = api.post(f"/events/{ids[0]}/revoke", json={"reason": "test"}, role="admin").json()
    assert undone["unsubscribed_cleared"] is False
    assert contact(ctx, bob.id).unsubscribed_at is not None


def test_an_admin_undoes_a_mistaken_hard_bounce(api, ctx, sent):
    ann, _, message = sent["ann"]
    body = {"type": "bounce", "event_id": "b-1", "message_id": message.message_id}
    event_id = api.post("/events", json=body).json()["event_id"]
    undone = api.post(f"/events/{event_id}/revoke", json={"reason": "x"}, role="admin").json()
    assert undone["bounced_cleared"] is True and contact(ctx, ann.id).bounced_at is None


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [({"reason": ""}, 422, "validation_error"), ({}, 422, "validation_error"),
     ({"reason": "x", "more": 1}, 422, "validation_error")],
)  # fmt: skip
def test_bad_revokes_are_refused(api, ctx, sent, body, status, code):
    reply = {"type": "reply", "event_id": "r-1", "contact_email": sent["ann"][0].email}
    event_id = api.post("/events", json=reply).json()["event_id"]
    assert_error(api.post(f"/events/{event_id}/revoke", json=body, role="admin"), status, code)
    assert_error(
        api.post(f"/events/{event_id}/revoke", json={"reason": "x"}, role="admin"),
        409,
        "invalid_state",
    )  # a reply marks nothing: there is nothing to undo
    assert_error(
        api.post("/events/999999/revoke", json={"reason": "x"}, role="admin"), 404, "not_found"
    )


def test_an_integration_token_feeds_the_postmark_webhook(api, ctx, sent):
    token = api.post("/integration-tokens", json={"name": "postmark"}, role="admin").json()
    headers = {"Authorization": f"Bearer {token['token']}"}
    ann, enrollment_id, _ = sent["ann"]
    body = {"RecordType": "SpamComplaint", "ID": 7, "Type": "SpamComplaint", "Email": ann.email}
    posted = api.client.post("/api/v1/events/postmark", json=body, headers=headers)
    assert posted.status_code == 201 and posted.json()["unenrolled"] == [enrollment_id]
    assert contact(ctx, ann.id).unsubscribed_at is not None
