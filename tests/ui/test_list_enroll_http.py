"""Enrolling a whole list through the enroll dialog over HTTP, on SQLite and PostgreSQL
(issue 11 item 3): the same choices as for chosen contacts, and a refusal shown next to
its field instead of a bare error page."""

from __future__ import annotations

from sqlalchemy import select

from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.crm import lists
from cadenza.services.crm.contacts import create_contact
from cadenza.services.enrollment import list_jobs as list_enrollment
from cadenza.store.models import Enrollment, ListEnrollJob


def _jobs(ctx) -> list[ListEnrollJob]:
    with ctx.db.read() as session:
        return list(session.scalars(select(ListEnrollJob)))


def test_whole_list_through_the_dialog_with_two_mailboxes(rep, ctx, world):
    second = create_mailbox(ctx, world.user.id, "rep2@example.com", from_name="Riley Two")
    ann = world.contact("ann@corp.example", firstname="Ann")
    nameless = create_contact(ctx, {"email": "nobody@corp.example"})
    the_list = lists.create_list(ctx, world.user.id, "Prospects", "static").contact_list
    lists.change_members(ctx, world.user.id, the_list.id, add=[ann.id, nameless.id])

    list_page = rep.client.get(f"/lists/{the_list.id}").text
    assert 'action="/enroll"' in list_page
    assert f'name="whole_list" value="{the_list.id}"' in list_page
    dialog = rep.client.get(f"/enroll?whole_list={the_list.id}&sequence={world.sequence.id}")
    assert dialog.status_code == 200
    assert 'id="enroll-list-scope"' in dialog.text and "All 2 members" in dialog.text
    for field in ('name="mailbox"', 'name="start_step"', 'name="timezone"', 'name="send"',
                  'name="follow_up_days"'):  # fmt: skip
        assert field in dialog.text, field
    assert "rep2@example.com" in dialog.text

    form = {"csrf_token": rep.token, "whole_list": str(the_list.id),
            "sequence": str(world.sequence.id), "start_step": "1", "send": "now",
            "follow_up_days": "every_day"}  # fmt: skip
    hx = {"HX-Request": "true"}
    check = rep.client.post("/enroll/check", data={**form, "mailbox": str(second.id)}, headers=hx)
    assert "Enroll all 2 members" in check.text and 'id="enroll-submit"' not in check.text
    assert "contact.firstname" in check.text  # the nameless member lacks a value

    refused = rep.client.post(f"/lists/{the_list.id}/enroll", data=form, headers=hx)
    assert refused.status_code == 200 and "HX-Redirect" not in refused.headers
    assert 'id="error-mailbox" hx-swap-oob="true">you have several mailboxes' in refused.text
    assert _jobs(ctx) == []  # nothing started

    chosen = {**form, "mailbox": str(second.id), "start_step": "2", "timezone": "Asia/Tokyo",
              "token:contact.firstname": "there", "window_start": "10:00",
              "window_end": "12:00"}  # fmt: skip
    started = rep.client.post(f"/lists/{the_list.id}/enroll", data=chosen, headers=hx)
    [job] = _jobs(ctx)
    assert started.headers["HX-Redirect"] == f"/lists/jobs/{job.id}"
    list_enrollment.run_due(ctx)
    with ctx.db.read() as session:
        made = {e.contact_id: e for e in session.scalars(select(Enrollment))}
    assert set(made) == {ann.id, nameless.id}
    for enrollment in made.values():
        assert (enrollment.mailbox_id, enrollment.start_step) == (second.id, 2)
        assert enrollment.timezone == "Asia/Tokyo"
        assert enrollment.settings_snapshot["send_window"] == {"start": "10:00", "end": "12:00"}
    assert made[nameless.id].token_values == {"contact.firstname": "there"}
    assert made[ann.id].token_values == {}


def test_bad_list_dialog_input_is_answered_not_a_500(rep, ctx, world):
    for path, status in (("/enroll?whole_list=abc", 422), ("/enroll?whole_list=999", 404)):
        answer = rep.client.get(path)
        assert answer.status_code == status, (path, answer.text[:300])
    empty = lists.create_list(ctx, world.user.id, "Empty", "static").contact_list
    form = {"csrf_token": rep.token, "whole_list": str(empty.id),
            "sequence": str(world.sequence.id)}  # fmt: skip
    check = rep.client.post("/enroll/check", data=form, headers={"HX-Request": "true"})
    assert check.status_code == 200 and "Enroll all" not in check.text
    bad = {**form, "timezone": "Mars/Base"}
    refused = rep.client.post(f"/lists/{empty.id}/enroll", data=bad, headers={"HX-Request": "true"})
    assert 'id="error-timezone" hx-swap-oob="true">' in refused.text and _jobs(ctx) == []
