"""Issue 11 item 10 over HTTP (both databases): the dialog's button counts who can be
enrolled and is disabled when nobody can; a contact's own panel enrolls just them."""

from __future__ import annotations

import re

from cadenza.store.models import Contact, Enrollment
from tests.ui.conftest import enroll_form


def button(page: str) -> tuple[str, bool]:
    tag = re.search(r'<button[^>]*id="enroll-submit"[^>]*>(.*?)</button>', page, re.S)
    opening = tag.group(0).split(">", 1)[0]
    return " ".join(tag.group(1).split()), " disabled" in opening


def seven(world):
    """2 ready, 5 not: two unsubscribed, one without an email, two already enrolled."""
    ready = world.contacts(2, prefix="ok")
    gone = world.contacts(2, prefix="gone")
    with world.ctx.db.transaction() as session:
        for contact in gone:
            session.get(Contact, contact.id).unsubscribed_at = world.ctx.clock.now()
    no_email = world.contact(None)
    enrolled = world.contacts(2, prefix="in")
    return ready, [*gone, no_email, *enrolled]


def test_the_button_counts_who_can_be_enrolled(rep, world, ctx):
    from tests.conftest import enroll_ids

    ready, refused = seven(world)
    enroll_ids(world, refused[-2:])
    form = enroll_form(rep.token, world, [*ready, *refused])
    check = rep.client.post("/enroll/check", data=form).text
    assert "2 of 7 can be enrolled" in check
    assert button(check) == ("Enroll 2 contacts", False)
    assert 'hx-confirm="Enroll 2 contacts? 5 of the 7 cannot be enrolled' in check
    # Each contact's own button follows that contact's state.
    for contact in ready:
        assert re.search(rf'id="enroll-one-{contact.id}"[^>]*hx-swap-oob="true"[^>]*>', check)
        assert not re.search(rf'id="enroll-one-{contact.id}"[^>]*disabled', check)
    for contact in refused:
        assert re.search(rf'id="enroll-one-{contact.id}"[^>]*disabled', check)

    nobody = rep.client.post("/enroll/check", data=enroll_form(rep.token, world, refused)).text
    assert "0 of 5 can be enrolled" in nobody and button(nobody) == ("Enroll 0 contacts", True)

    one = rep.client.post(
        "/enroll/check", data=enroll_form(rep.token, world, [ready[0], *refused])
    ).text
    label, disabled = button(one)
    assert label == "Enroll Ann" and not disabled


def test_a_contacts_own_panel_enrolls_just_that_contact(rep, world, ctx):
    ready = world.contacts(3, prefix="p")
    form = enroll_form(rep.token, world, ready, only=str(ready[1].id))
    done = rep.client.post("/enroll", data=form)
    assert done.status_code == 200 and done.text.count('class="ok"') == 1
    with ctx.db.read() as session:
        assert [e.contact_id for e in session.query(Enrollment)] == [ready[1].id]
    # A contact that is not in the dialog is refused, nothing written.
    stranger = world.contact("stranger@corp.example")
    form = enroll_form(rep.token, world, ready[:1], only=str(stranger.id))
    answer = rep.client.post("/enroll", data=form)
    assert "not part of this enrollment" in answer.text
    with ctx.db.read() as session:
        assert session.query(Enrollment).count() == 1


def test_the_dialog_has_a_panel_button_per_contact(rep, world):
    ready = world.contacts(2, prefix="d")
    page = rep.client.get(f"/enroll?contact={ready[0].id}&contact={ready[1].id}").text
    for contact in ready:
        assert f'id="enroll-one-{contact.id}"' in page


def test_contact_ids_no_row_can_have_leave_the_dialog_to_the_others(rep, world):
    """A hand-made link: digits that are not ASCII, a number too long for Python to
    read, ids no row can have. Each is left out; the real contacts stay."""
    ready = world.contacts(2, prefix="h")
    hostile = ["²", "٣", "9" * 5000, str(2**31), "0", "-1", "1e3", " 1"]
    query = "&".join(f"contact={value}" for value in [*hostile, *(str(c.id) for c in ready)])
    answer = rep.client.get(f"/enroll?{query}")
    assert answer.status_code == 200, answer.text[:300]
    assert answer.text.count('id="enroll-one-') == 2
    for contact in ready:
        assert f'id="enroll-one-{contact.id}"' in answer.text
