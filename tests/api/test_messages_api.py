"""The outbox over HTTP: what the worker sent, its attempts and MIME, review of unknown sends."""

import pytest

from tests.conftest import (
    MISSING_ID,
    assert_error,
    backend_independent,
    crash_while_handing_over,
    enroll_as,
)
from tests.conftest import run_worker as run

EMAIL = [
    {"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"},
    {"type": "email", "delay_days": 3, "thread_with_step": 1, "body": "<p>Bump</p>"},
]
MESSAGE_FIELDS = {"id", "enrollment_id", "contact_id", "mailbox_id", "message_id", "in_reply_to",
                  "from_email", "to_email", "subject", "body_html", "body_text", "status",
                  "smtp_reply", "handed_at", "sent_at", "created_at", "variant"}  # fmt: skip


def listed(api, role="member", **params):
    response = api.get("/messages", role=role, params=params)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def all_pages(api, role="member", **params):
    """Every message, following the cursor; also how many pages came back short (none
    should: a page is short only when it is the last)."""
    seen, short, cursor = [], 0, None
    while True:
        body = api.get("/messages", role=role, params=params | {"cursor": cursor or ""}).json()
        seen += [m["id"] for m in body["results"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, short
        short += len(body["results"]) < params["limit"]


def make_unknown(api, worker):
    """A worker dies after marking the send "handing": nobody knows whether it arrived."""
    ctx = api.ctx
    enroll_as(api, "member", [api.world.contact()], EMAIL)
    crash_while_handing_over(ctx, worker)
    [message] = listed(api, status="unknown")
    return message


def test_sent_messages_are_listed_newest_first(api, worker):
    ann, bob = api.world.contact("ann@corp.example"), api.world.contact("bob@corp.example")
    enrollment_ids = enroll_as(api, "member", [ann, bob], EMAIL)
    run(api, worker)
    found = listed(api)
    assert [m["to_email"] for m in found] == ["bob@corp.example", "ann@corp.example"]
    assert all(set(m) == MESSAGE_FIELDS for m in found)
    assert {m["status"] for m in found} == {"sent"}
    first = found[1]
    assert (first["subject"], first["from_email"], first["mailbox_id"]) == (
        "Hi Ann", "rep@example.com", api.world.mailbox.id)  # fmt: skip
    assert (first["enrollment_id"], first["contact_id"]) == (enrollment_ids[0], ann.id)
    assert first["sent_at"] and first["handed_at"] and "Hello" in first["body_text"]
    run(api, worker, hours=24 * 5)
    follow_up = listed(api, enrollment_id=enrollment_ids[0])[0]
    assert follow_up["subject"] == "Re: Hi Ann" and follow_up["in_reply_to"] == first["message_id"]


def test_one_message_has_its_attempts_and_raw_mime(api, worker):
    enroll_as(api, "member", [api.world.contact()], EMAIL)
    run(api, worker)
    [summary] = listed(api)
    response = api.get(f"/messages/{summary['id']}")
    assert response.status_code == 200, response.text
    detail = response.json()
    assert set(detail) == MESSAGE_FIELDS | {"attempts", "raw"}
    assert {k: detail[k] for k in MESSAGE_FIELDS} == summary
    [attempt] = detail["attempts"]
    assert set(attempt) == {"attempt", "outcome", "code", "reply", "at"}
    assert (attempt["attempt"], attempt["outcome"]) == (1, "sent")
    assert f"Message-ID: {summary['message_id']}" in detail["raw"]
    assert "Subject: Hi Ann" in detail["raw"]


def test_filters_and_cursor(api, worker):
    contacts = api.world.contacts(3)
    enrollment_ids = enroll_as(api, "member", contacts, EMAIL)
    run(api, worker)
    assert [m["enrollment_id"] for m in listed(api, enrollment_id=enrollment_ids[1])] == [
        enrollment_ids[1]
    ]
    assert len(listed(api, status="sent")) == 3
    assert listed(api, status="failed") == listed(api, status="unknown") == []
    assert listed(api, enrollment_id=MISSING_ID) == []
    first = api.get("/messages", params={"limit": 2}).json()
    rest = api.get("/messages", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    ids = [m["id"] for m in first["results"] + rest["results"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3
    assert rest["next_cursor"] is None


@backend_independent
@pytest.mark.parametrize(
    "params",
    [
        {"status": "delivered"},
        {"limit": 0},
        {"cursor": "abc"},
        {"cursor": str(2**31)},  # past the id column's range: never one we gave out
        {"cursor": "9" * 30},
        {"cursor": "9" * 5000},
        {"cursor": "²"},  # a digit to str.isdigit, not to int
        {"enrollment_id": "x"},
        {"enrollment_id": 2**31},
    ],
)
def test_bad_list_parameters_are_422(api, params):
    assert_error(api.get("/messages", params=params), 422, "validation_error")


def test_members_see_only_messages_of_their_own_mailboxes(api, worker):
    enroll_as(api, "member", [api.world.contact("m@corp.example")], EMAIL)
    enroll_as(api, "other", [api.world.contact("o@corp.example")], EMAIL)
    run(api, worker)
    [mine] = listed(api)
    [theirs] = listed(api, role="other")
    assert (mine["to_email"], theirs["to_email"]) == ("m@corp.example", "o@corp.example")
    assert {m["id"] for m in listed(api, role="admin")} == {mine["id"], theirs["id"]}
    assert listed(api, role="viewer") == []
    error = assert_error(api.get(f"/messages/{theirs['id']}"), 404, "not_found")
    assert error["message"] == f"message {theirs['id']} does not exist"  # like a missing one
    assert_error(api.get(f"/messages/{MISSING_ID}"), 404, "not_found")
    assert_error(api.get(f"/messages/{mine['id']}", role="viewer"), 404, "not_found")
    assert api.get(f"/messages/{theirs['id']}", role="admin").status_code == 200
    assert api.get(f"/messages/{theirs['id']}", role="other").status_code == 200
    assert_error(api.get("/messages", role=None), 401, "unauthenticated")
    assert_error(api.get(f"/messages/{mine['id']}", role=None), 401, "unauthenticated")


def test_a_members_pages_hold_only_their_messages_and_are_complete(api, worker):
    enroll_as(api, "other", api.world.contacts(5, prefix="o"), EMAIL[:1])
    enroll_as(api, "member", api.world.contacts(4, prefix="m"), EMAIL[:1])
    enroll_as(api, "other", api.world.contacts(3, prefix="p"), EMAIL[:1])
    run(api, worker)
    everyone = listed(api, role="admin", limit=500)
    mine = [m["id"] for m in everyone if m["mailbox_id"] == api.world.mailbox.id]
    everyone = [m["id"] for m in everyone]
    assert len(mine) == 4 and len(everyone) == 12
    for limit in (1, 2, 3, 5):
        assert all_pages(api, limit=limit) == (mine, 0), limit
    assert all_pages(api, role="admin", limit=5)[0] == everyone


def test_reviewing_an_unknown_send_as_delivered(api, worker):
    message = make_unknown(api, worker)
    detail = api.get(f"/messages/{message['id']}").json()
    assert detail["status"] == "unknown" and detail["sent_at"] is None
    assert_error(api.post(f"/messages/{message['id']}/review", role="other",
                          json={"delivered": True}), 404, "not_found")  # fmt: skip
    reviewed = api.post(f"/messages/{message['id']}/review", json={"delivered": True})
    assert reviewed.status_code == 200, reviewed.text
    assert reviewed.json()["status"] == "sent" and reviewed.json()["sent_at"]
    assert [m["status"] for m in listed(api)] == ["sent"]
    again = api.post(f"/messages/{message['id']}/review", json={"delivered": True})
    assert_error(again, 409, "invalid_state")
    run(api, worker, hours=24 * 5)  # the sequence went on from the review
    assert [m["subject"] for m in listed(api)] == ["Re: Hi Ann", "Hi Ann"]


def test_an_undelivered_unknown_send_goes_again_with_the_same_message_id(api, worker):
    message = make_unknown(api, worker)
    reviewed = api.post(f"/messages/{message['id']}/review", role="admin",
                        json={"delivered": False})  # fmt: skip
    assert reviewed.status_code == 200, reviewed.text
    assert reviewed.json()["status"] == "prepared"
    run(api, worker)
    [sent] = listed(api)
    assert (sent["id"], sent["message_id"], sent["status"]) == (
        message["id"], message["message_id"], "sent")  # fmt: skip


def test_review_is_refused_for_sent_missing_and_by_viewers(api, worker):
    enroll_as(api, "member", [api.world.contact()], EMAIL)
    run(api, worker)
    [sent] = listed(api)
    path = f"/messages/{sent['id']}/review"
    error = assert_error(api.post(path, json={"delivered": True}), 409, "invalid_state")
    assert "only unknown sends" in error["message"]
    assert_error(
        api.post(f"/messages/{MISSING_ID}/review", json={"delivered": True}), 404, "not_found"
    )
    assert_error(api.post(path, role="viewer", json={"delivered": True}), 403,
                 "permission_denied")  # fmt: skip
    assert_error(api.post(path, role=None, json={"delivered": True}), 401, "unauthenticated")
    for body in ({}, {"delivered": "yes"}, {"delivered": 1}, {"delivered": True, "why": "x"}):
        assert_error(api.post(path, json=body), 422, "validation_error")
    for impossible in (0, 2**31):
        response = api.post(f"/messages/{impossible}/review", json={"delivered": True})
        assert_error(response, 422, "validation_error")
