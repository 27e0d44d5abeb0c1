"""The enroll dialog when the mailbox does not detect replies (issue 14 §2), over HTTP
on both databases: the "Send from" choice is marked, the dry run warns, and enrolling
is refused until the person ticks "Enroll even though…"."""

from __future__ import annotations

from cadenza.store.models import Enrollment
from tests.ui.conftest import enroll_form


def _enrollments(ctx) -> int:
    with ctx.db.read() as session:
        return session.query(Enrollment).count()


def test_the_web_dialog_marks_the_mailbox_and_refuses_until_confirmed(ctx, world, smtp_box, rep):
    contacts = world.contacts(2)
    dialog = rep.client.get(f"/enroll?contact={contacts[0].id}&contact={contacts[1].id}").text
    assert "replies not detected" in dialog and 'name="confirm_warnings"' in dialog
    form = enroll_form(rep.token, world, contacts)
    check = rep.client.post("/enroll/check", data=form).text
    assert 'id="enroll-warnings"' in check and "keeps getting the follow-ups" in check
    refused = rep.client.post("/enroll", data=form)
    assert "confirm to enroll anyway" in refused.text and _enrollments(ctx) == 0
    enrolled = rep.client.post("/enroll", data={**form, "confirm_warnings": "on"})
    assert enrolled.status_code == 200 and _enrollments(ctx) == 2
