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


def test_the_sequence_page_names_the_mailboxes_whose_replies_are_not_detected(
    ctx, world, smtp_box, rep
):
    from cadenza.services.accounts.mailboxes import update_mailbox
    from tests.conftest import enroll_ids

    page = rep.client.get(f"/sequences/{world.sequence.id}").text
    assert 'id="replies-not-detected"' not in page  # nobody enrolled yet
    enroll_ids(world, world.contacts(3))
    page = rep.client.get(f"/sequences/{world.sequence.id}").text
    assert 'id="replies-not-detected"' in page
    assert "rep@corp.example</a> (3 live enrollments)" in page
    update_mailbox(ctx, smtp_box.id, {"imap_host": "127.0.0.1", "imap_port": 993})
    page = rep.client.get(f"/sequences/{world.sequence.id}").text
    assert 'id="replies-not-detected"' not in page
