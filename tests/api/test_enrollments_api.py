"""Enrollments over HTTP: results per contact, offsets kept, every refusal, control, roles.

The member (world.user) lives in America/New_York, so contacts without a zone of their
own run there: 04:00 at -05:00 on the frozen Monday 2026-03-02 09:00 UTC, and -04:00
from Sunday 2026-03-08 on.
"""

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.store.models import Contact, Enrollment, Mailbox, User
from tests.conftest import MISSING_ID, assert_error, enroll_ids
from tests.conftest import enroll_over_api as enroll
from tests.support.seed import seed_due_emails


def results(response):
    assert response.status_code == 200, response.text
    return response.json()["results"]


def enrollment_count(ctx):
    with ctx.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(Enrollment))


def change(ctx, model, row_id, **values):
    with ctx.db.transaction() as session:
        row = session.get(model, row_id)
        for key, value in values.items():
            setattr(row, key, value)


def schedule(result):
    return [(s["step"], s["due_at"]) for s in result["schedule"]]


NEW_YORK_SCHEDULE = [
    (1, "2026-03-02T04:00:00-05:00"),
    (2, "2026-03-05T04:00:00-05:00"),
    (3, "2026-03-09T04:00:00-04:00"),  # Sunday 8th moves to Monday, after the DST change
]


def test_dry_run_then_enroll_with_a_result_per_contact(api, world):
    ann, bob = world.contact("ann@corp.example"), world.contact("bob@corp.example")
    bounced = world.contact("gone@corp.example")
    change(api.ctx, Contact, bounced.id, bounced_at=api.ctx.clock.now())

    dry = results(enroll(api, world, [ann, bob, bounced], dry_run=True))
    assert [(r["contact_id"], r["ok"], r["enrollment_id"]) for r in dry] == [
        (ann.id, True, None),
        (bob.id, True, None),
        (bounced.id, False, None),
    ]
    assert enrollment_count(api.ctx) == 0

    real = results(enroll(api, world, [ann, bob, bounced]))
    assert [r["ok"] for r in real] == [True, True, False]
    for result in real[:2]:
        assert result["enrollment_id"] and result["timezone"] == "America/New_York"
        assert (result["code"], result["message"], result["missing_tokens"]) == (None, None, [])
        assert schedule(result) == NEW_YORK_SCHEDULE
    assert [schedule(r) for r in dry[:2]] == [NEW_YORK_SCHEDULE] * 2
    refused = real[2]
    assert (refused["code"], refused["enrollment_id"], refused["schedule"]) == ("bounced", None, [])
    assert refused["message"]
    assert enrollment_count(api.ctx) == 2
    again = results(enroll(api, world, [ann]))
    assert (again[0]["ok"], again[0]["code"]) == (False, "already_enrolled")


def test_per_contact_options_tokens_and_step_edits(api, world):
    nameless = world.contact("x@corp.example", firstname=None)
    tokyo = world.contact("t@corp.example", timezone="Asia/Tokyo")
    other = world.contact("o@corp.example")
    contacts = [
        {"contact_id": nameless.id},
        {"contact_id": tokyo.id, "step_edits": {"2": {"body": "<p>Mine</p><script>x</script>"}}},
        {"contact_id": other.id, "token_values": {"firstname": "Sam"},
         "step_edits": {"9": {"subject": "Nope"}}},
        {"contact_id": MISSING_ID},
        {"contact_id": tokyo.id},
    ]  # fmt: skip
    found = results(enroll(api, world, contacts))
    assert [(r["ok"], r["code"]) for r in found] == [
        (False, "missing_token_values"),
        (True, None),
        (False, "invalid_step_edit"),
        (False, "contact_not_found"),
        (False, "duplicate_contact"),
    ]
    assert found[0]["missing_tokens"] == ["contact.firstname"]
    assert found[1]["timezone"] == "Asia/Tokyo"
    assert found[1]["schedule"][0]["due_at"] == "2026-03-02T18:00:00+09:00"
    with api.ctx.db.transaction() as session:
        snapshot = session.get(Enrollment, found[1]["enrollment_id"]).steps_snapshot
    assert snapshot[1]["body"] == "<p>Mine</p>"
    named = {"contact_id": other.id, "token_values": {"contact.firstname": "Sam"}}
    assert results(enroll(api, world, [named]))[0]["ok"]
    bad_edit = enroll(api, world, [{"contact_id": other.id, "step_edits": {"1": {"delay": 1}}}])
    assert_error(bad_edit, 422, "validation_error")


def test_timezone_and_start_step_options(api, world):
    contact = world.contact()
    [dry] = results(enroll(api, world, [contact], timezone="UTC", start_step=2, dry_run=True))
    assert dry["timezone"] == "UTC"
    # "+00:00", not "Z": every time carries the enrollment's offset the same way
    assert schedule(dry) == [(2, "2026-03-02T09:00:00+00:00"), (3, "2026-03-05T09:00:00+00:00")]


def test_send_at_with_an_offset_is_an_instant_without_one_each_contacts_wall_clock(api, world):
    new_york = world.contact("ny@corp.example")
    berlin = world.contact("be@corp.example", timezone="Europe/Berlin")
    instant = results(enroll(api, world, [new_york, berlin], dry_run=True,
                             send_at="2026-03-03T10:00:00+00:00"))  # fmt: skip
    assert [r["schedule"][0]["due_at"] for r in instant] == [
        "2026-03-03T05:00:00-05:00",
        "2026-03-03T11:00:00+01:00",
    ]
    wall = results(enroll(api, world, [new_york, berlin], dry_run=True,
                          send_at="2026-03-03T10:00:00"))  # fmt: skip
    assert [r["schedule"][0]["due_at"] for r in wall] == [
        "2026-03-03T10:00:00-05:00",
        "2026-03-03T10:00:00+01:00",
    ]
    # 08:00 today is still ahead in New York (13:00 UTC) but gone in Berlin (07:00 UTC)
    today = results(enroll(api, world, [new_york, berlin], send_at="2026-03-02T08:00:00"))
    assert [(r["ok"], r["code"]) for r in today] == [(True, None), (False, "send_at_in_past")]
    assert today[0]["schedule"][0]["due_at"] == "2026-03-02T08:00:00-05:00"
    assert today[1]["timezone"] == "Europe/Berlin"


@pytest.mark.parametrize(
    ("options", "status", "code"),
    [
        ({"timezone": "Mars/Phobos"}, 422, "invalid_timezone"),
        ({"start_step": 4}, 422, "invalid_start_step"),
        ({"start_step": 0}, 422, "invalid_start_step"),
        ({"send_at": "2026-03-02T08:59:00+00:00"}, 422, "send_at_in_past"),
        ({"send_at": "0001-01-01T00:00:00"}, 422, "send_at_in_past"),  # past in every zone
        ({"send_at": "9999-12-31T23:59:59-14:00"}, 422, "validation_error"),  # beyond 5 years
        ({"mailbox_id": MISSING_ID}, 404, "mailbox_not_found"),
        ({"contacts": []}, 422, "no_contacts"),
        ({"sequence_id": MISSING_ID}, 404, "sequence_not_found"),
        ({"send_at": "soon"}, 422, "validation_error"),
        ({"contacts": [{"id": 1}]}, 422, "validation_error"),
        ({"mode": "fast"}, 422, "validation_error"),
    ],
)
def test_whole_request_errors(api, world, options, status, code):
    options = {"contacts": [world.contact()], **options}
    error = assert_error(enroll(api, world, **options), status, code)
    assert error["message"]
    assert enrollment_count(api.ctx) == 0


def test_at_most_fifty_contacts_per_request(api, world):
    error = assert_error(enroll(api, world, world.contacts(51)), 422, "bulk_limit_exceeded")
    assert error["details"] == {"limit": 50, "requested": 51}
    assert enrollment_count(api.ctx) == 0


def test_mailbox_errors(api, world):
    contact = world.contact()
    other_box = api.other_mailbox.id
    assert_error(enroll(api, world, [contact], mailbox_id=other_box), 403, "mailbox_not_yours")
    change(api.ctx, Mailbox, world.mailbox.id, connected=False, disconnected_reason="535")
    error = assert_error(enroll(api, world, [contact]), 422, "mailbox_disconnected")
    assert error["details"] == {"reason": "535"}
    change(api.ctx, Mailbox, world.mailbox.id, connected=True)
    second = create_mailbox(api.ctx, world.user.id, "rep2@example.com")
    error = assert_error(enroll(api, world, [contact]), 422, "mailbox_required")
    assert error["details"] == {"mailbox_ids": [world.mailbox.id, second.id]}
    [result] = results(enroll(api, world, [contact], mailbox_id=second.id))
    assert result["ok"]
    assert enrollment_count(api.ctx) == 1
    with_admin = enroll(api, world, [world.contact("b@corp.example")], role="admin")
    assert_error(with_admin, 404, "mailbox_not_found")  # admins have no mailbox here


def test_an_admin_may_send_from_a_members_mailbox_and_a_member_not_from_theirs(api, world):
    """The enroll rule's owners are the sending mailbox's: its owner, or an admin."""
    contact, box = world.contact(), world.mailbox.id
    refused = enroll(api, world, [contact], role="other", mailbox_id=box)
    assert_error(refused, 403, "mailbox_not_yours")
    assert enrollment_count(api.ctx) == 0
    [result] = results(enroll(api, world, [contact], role="admin", mailbox_id=box))
    assert result["ok"]
    detail = api.get(f"/enrollments/{result['enrollment_id']}", role="admin").json()
    assert detail["enrolled_by_id"] == api.users["admin"].id
    assert detail["mailbox_id"] == box
    # ...and it is the mailbox owner's enrollment too: they see and pause it
    paused = api.post(f"/enrollments/{result['enrollment_id']}/pause")
    assert paused.status_code == 200, paused.text
    change(api.ctx, User, api.users["admin"].id, can_enroll=False)
    refused = enroll(api, world, [world.contact("b@corp.example")], role="admin", mailbox_id=box)
    assert_error(refused, 403, "permission_denied")  # the permission binds admins too


def test_who_may_enroll(api, world):
    contact = world.contact()
    assert_error(enroll(api, world, [contact], role="viewer"), 403, "permission_denied")
    assert_error(enroll(api, world, [contact], role=None), 401, "unauthenticated")
    change(api.ctx, User, world.user.id, can_enroll=False)
    assert_error(enroll(api, world, [contact]), 403, "permission_denied")
    assert enrollment_count(api.ctx) == 0
    # any member may enroll in any sequence, from their own mailbox, as themselves
    [result] = results(enroll(api, world, [contact], role="other"))
    assert result["ok"]
    detail = api.get(f"/enrollments/{result['enrollment_id']}", role="other").json()
    assert detail["enrolled_by_id"] == api.users["other"].id
    assert detail["mailbox_id"] == api.other_mailbox.id


def test_an_enrollment_shows_its_steps_and_projected_future(api, world):
    [result] = results(enroll(api, world, [world.contact()]))
    response = api.get(f"/enrollments/{result['enrollment_id']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ("id", "sequence_id", "mailbox_id", "enrolled_by_id")} == {
        "id": result["enrollment_id"],
        "sequence_id": world.sequence.id,
        "mailbox_id": world.mailbox.id,
        "enrolled_by_id": world.user.id,
    }
    assert (body["state"], body["reason"], body["reason_detail"]) == ("active", None, None)
    assert (body["timezone"], body["needs_attention"]) == ("America/New_York", False)
    assert (body["enrolled_at"], body["ended_at"]) == ("2026-03-02T04:00:00-05:00", None)
    assert body["steps"] == [
        {"position": 1, "type": "email", "title": "Hi Ann",
         "status": "pending", "due_at": "2026-03-02T04:00:00-05:00", "completed_at": None,
         "wait_reason": None, "last_error": None},
        {"position": 2, "type": "email", "title": "reply in the thread of step 1",
         "status": "projected", "due_at": "2026-03-05T04:00:00-05:00", "completed_at": None,
         "wait_reason": None, "last_error": None},
        {"position": 3, "type": "task", "title": "Call Ann",
         "status": "projected", "due_at": "2026-03-09T04:00:00-04:00", "completed_at": None,
         "wait_reason": None, "last_error": None},
    ]  # fmt: skip
    assert_error(api.get(f"/enrollments/{MISSING_ID}"), 404, "enrollment_not_found")


def test_list_filters_and_pages(api, world):
    first, second, third = world.contacts(3)
    ids = enroll_ids(world, [first, second, third])
    later = world.make_sequence(name="Later")
    [elsewhere] = results(enroll(api, world, [world.contact("z@corp.example")],
                                 sequence_id=later.id))  # fmt: skip
    api.post(f"/enrollments/{ids[1]}/pause")

    page = api.get("/enrollments", params={"sequence_id": world.sequence.id, "limit": 2}).json()
    assert [e["id"] for e in page["results"]] == ids[:2] and page["next_cursor"]
    rest = api.get("/enrollments", params={"sequence_id": world.sequence.id, "limit": 2,
                                           "cursor": page["next_cursor"]}).json()  # fmt: skip
    assert [e["id"] for e in rest["results"]] == ids[2:] and rest["next_cursor"] is None
    assert "steps" not in rest["results"][0]
    assert rest["results"][0]["enrolled_at"] == "2026-03-02T04:00:00-05:00"

    def listed(**params):
        return [e["id"] for e in api.get("/enrollments", params=params).json()["results"]]

    assert listed(state="paused") == [ids[1]]
    assert listed(contact_id=third.id) == [ids[2]]
    assert listed(sequence_id=later.id) == [elsewhere["enrollment_id"]]
    assert listed() == [*ids, elsewhere["enrollment_id"]]
    assert_error(api.get("/enrollments", params={"state": "gone"}), 422, "validation_error")
    assert_error(api.get("/enrollments", params={"limit": 501}), 422, "validation_error")
    assert_error(api.get("/enrollments", role=None), 401, "unauthenticated")


def test_members_only_see_their_own_enrollments(api, world):
    mine = enroll_ids(world, world.contacts(3, prefix="m"))
    [theirs] = results(enroll(api, world, [world.contact("o@corp.example")], role="other"))
    more = enroll_ids(world, world.contacts(2, prefix="n"))
    theirs_id = theirs["enrollment_id"]

    page = api.get("/enrollments", params={"limit": 4}).json()
    assert [e["id"] for e in page["results"]] == [*mine, more[0]]
    rest = api.get("/enrollments", params={"limit": 4, "cursor": page["next_cursor"]}).json()
    assert [e["id"] for e in rest["results"]] == more[1:] and rest["next_cursor"] is None
    assert [e["id"] for e in api.get("/enrollments", role="other").json()["results"]] == [theirs_id]
    everyone = [*mine, theirs_id, *more]
    for role in ("admin", "viewer"):
        assert [e["id"] for e in api.get("/enrollments", role=role).json()["results"]] == everyone

    assert_error(api.get(f"/enrollments/{theirs_id}"), 404, "enrollment_not_found")
    assert_error(api.get(f"/enrollments/{mine[0]}", role="other"), 404, "enrollment_not_found")
    for action in ("pause", "resume", "unenroll"):
        assert_error(api.post(f"/enrollments/{theirs_id}/{action}"), 404, "enrollment_not_found")
    assert api.get(f"/enrollments/{theirs_id}", role="viewer").status_code == 200
    assert api.get(f"/enrollments/{theirs_id}").status_code == 404
    paused = api.post(f"/enrollments/{theirs_id}/pause", role="admin")
    assert paused.json()["state"] == "paused"


def test_pause_resume_unenroll_one(api, world):
    [eid] = enroll_ids(world, [world.contact()])
    path = f"/enrollments/{eid}"

    paused = api.post(f"{path}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["state"] == "paused"
    assert [s["status"] for s in paused.json()["steps"]] == ["paused", "projected", "projected"]
    error = assert_error(api.post(f"{path}/pause"), 409, "invalid_state")
    assert error["details"] == {"state": "paused"}

    resumed = api.post(f"{path}/resume")
    assert resumed.json()["state"] == "active"
    assert [s["status"] for s in resumed.json()["steps"]] == ["pending", "projected", "projected"]
    assert_error(api.post(f"{path}/resume"), 409, "invalid_state")

    ended = api.post(f"{path}/unenroll", json={"reason": "meeting_booked", "detail": "Tue 3pm"})
    body = ended.json()
    assert (body["state"], body["reason"], body["reason_detail"]) == (
        "unenrolled",
        "meeting_booked",
        "Tue 3pm",
    )
    assert body["ended_at"] == "2026-03-02T04:00:00-05:00"
    assert [s["status"] for s in body["steps"]] == ["cancelled"]
    assert_error(api.post(f"{path}/unenroll"), 409, "invalid_state")
    assert_error(api.post(f"{path}/resume"), 409, "invalid_state")

    [other] = enroll_ids(world, [world.contact("b@corp.example")])
    plain = api.post(f"/enrollments/{other}/unenroll")  # the body is optional
    assert (plain.json()["reason"], plain.json()["reason_detail"]) == ("manual", None)
    [third] = enroll_ids(world, [world.contact("c@corp.example")])
    bad = api.post(f"/enrollments/{third}/unenroll", json={"reason": "bored"})
    assert_error(bad, 422, "validation_error")
    assert_error(api.post(f"/enrollments/{MISSING_ID}/pause"), 404, "enrollment_not_found")
    assert_error(api.post(f"/enrollments/{MISSING_ID}/unenroll", role="admin"), 404,
                 "enrollment_not_found")  # fmt: skip


def test_bulk_actions_report_each_enrollment(api, world):
    first, second = enroll_ids(world, world.contacts(2))
    api.post(f"/enrollments/{second}/pause")
    [theirs] = results(enroll(api, world, [world.contact("o@corp.example")], role="other"))
    theirs_id = theirs["enrollment_id"]

    paused = api.post("/enrollments/pause", json={"enrollment_ids": [first, second, theirs_id]})
    assert paused.status_code == 200, paused.text
    outcomes = paused.json()["results"]
    assert [(r["enrollment_id"], r["ok"], r["code"]) for r in outcomes] == [
        (first, True, None),
        (second, False, "invalid_state"),
        (theirs_id, False, "enrollment_not_found"),
    ]
    assert outcomes[0]["message"] is None and outcomes[1]["message"]

    resumed = api.post("/enrollments/resume", json={"enrollment_ids": [first, MISSING_ID]})
    assert [(r["ok"], r["code"]) for r in resumed.json()["results"]] == [
        (True, None),
        (False, "enrollment_not_found"),
    ]
    ended = api.post(
        "/enrollments/unenroll",
        json={"enrollment_ids": [first, second], "reason": "replied", "detail": "thread"},
    )
    assert [r["ok"] for r in ended.json()["results"]] == [True, True]
    detail = api.get(f"/enrollments/{second}").json()
    assert (detail["state"], detail["reason"], detail["reason_detail"]) == (
        "unenrolled",
        "replied",
        "thread",
    )
    as_admin = api.post("/enrollments/pause", role="admin", json={"enrollment_ids": [theirs_id]})
    assert as_admin.json()["results"][0]["ok"] is True

    too_many = api.post("/enrollments/pause", json={"enrollment_ids": list(range(1, 502))})
    error = assert_error(too_many, 422, "bulk_limit_exceeded")
    assert error["details"] == {"limit": 500, "requested": 501}
    assert_error(api.post("/enrollments/pause", json={"ids": [first]}), 422, "validation_error")
    assert_error(api.post("/enrollments/unenroll", json={"enrollment_ids": [first],
                                                         "reason": "bored"}),
                 422, "validation_error")  # fmt: skip


def test_viewers_never_change_enrollments(api, world):
    [eid] = enroll_ids(world, [world.contact()])
    for path in (f"/enrollments/{eid}/pause", f"/enrollments/{eid}/unenroll"):
        assert_error(api.post(path, role="viewer"), 403, "permission_denied")
    for action in ("pause", "resume", "unenroll"):
        bulk = api.post(f"/enrollments/{action}", role="viewer", json={"enrollment_ids": [eid]})
        assert_error(bulk, 403, "permission_denied")
    assert_error(api.post(f"/enrollments/{eid}/pause", role=None), 401, "unauthenticated")
    assert api.get(f"/enrollments/{eid}", role="viewer").json()["state"] == "active"


def test_times_of_a_finished_step_keep_the_offset(api, world, worker):
    [eid] = enroll_ids(world, [world.contact()])
    worker.run_until(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    step = api.get(f"/enrollments/{eid}").json()["steps"][0]
    assert (step["status"], step["completed_at"]) == ("sent", "2026-03-02T04:00:00-05:00")


def test_a_members_page_reaches_past_many_enrollments_of_others(api, world):
    [early] = enroll_ids(world, [world.contact("early@corp.example")])
    seed_due_emails(api.ctx, 1000)  # someone else's, between the member's own
    late = enroll_ids(world, world.contacts(2, prefix="late"))
    page = api.get("/enrollments", params={"limit": 2}).json()
    assert [e["id"] for e in page["results"]] == [early, late[0]]
    assert page["next_cursor"] == str(late[0])
    rest = api.get("/enrollments", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert ([e["id"] for e in rest["results"]], rest["next_cursor"]) == ([late[1]], None)
    everyone = api.get("/enrollments", role="admin", params={"limit": 500}).json()
    assert len(everyone["results"]) == 500
    assert everyone["next_cursor"] == str(everyone["results"][-1]["id"])  # the last one shown
