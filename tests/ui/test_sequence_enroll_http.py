"""A sequence page's "Enroll contacts" (issue 11 item 7): search and pick, or paste
addresses (unknown ones reported, created only when confirmed), leading into the
enroll dialog; on SQLite and PostgreSQL."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from cadenza.services.crm.contacts import resolve_emails
from cadenza.store.models import Contact, User
from tests.ui.conftest import Ui, set_password


def _count(ctx) -> int:
    with ctx.db.read() as session:
        return session.scalar(select(func.count()).select_from(Contact))


def test_sequence_page_leads_to_search_and_pick_then_the_dialog(rep, world):
    ann = world.contact("ann@corp.example", firstname="Ann", lastname="Lee")
    world.contact("bob@corp.example", firstname="Bob")
    page = rep.client.get(f"/sequences/{world.sequence.id}")
    assert f'href="/sequences/{world.sequence.id}/enroll" id="enroll-contacts"' in page.text
    found = rep.client.get(f"/sequences/{world.sequence.id}/enroll?q=lee")
    assert re.findall(r'name="contact" value="(\d+)"', found.text) == [str(ann.id)]
    assert 'action="/enroll"' in found.text
    assert f'name="sequence" value="{world.sequence.id}"' in found.text
    assert (
        "No contact matches"
        in rep.client.get(f"/sequences/{world.sequence.id}/enroll?q=nobody").text
    )
    dialog = rep.client.get(f"/enroll?sequence={world.sequence.id}&contact={ann.id}")
    assert f'<option value="{world.sequence.id}" selected>' in dialog.text


def test_pasted_addresses_are_found_reported_and_created_only_when_confirmed(rep, ctx, world):
    ann = world.contact("ann@corp.example")
    before = _count(ctx)
    pasted = "Ann Lee <ANN@corp.example>, new@corp.example\nnot-an-address  ann@corp.example"
    path = f"/sequences/{world.sequence.id}/enroll/emails"
    first = rep.client.post(path, data={"csrf_token": rep.token, "emails": pasted})
    assert first.status_code == 200
    assert 'id="unknown-emails"' in first.text and "new@corp.example" in first.text
    assert 'id="invalid-emails"' in first.text and "not-an-address" in first.text
    assert re.findall(r'name="contact" value="(\d+)"', first.text) == [str(ann.id)]
    assert _count(ctx) == before  # nothing created without confirming
    hidden = re.search(r'name="emails" value="([^"]*)"', first.text).group(1)
    confirmed = rep.client.post(
        path, data={"csrf_token": rep.token, "emails": hidden, "create_unknown": "true"}
    )
    assert 'id="created-emails"' in confirmed.text and _count(ctx) == before + 1
    ids = re.findall(r'name="contact" value="(\d+)"', confirmed.text)
    assert len(ids) == 2 and ids[0] == str(ann.id)


def test_paste_refuses_hostile_input(rep, ctx, world):
    path = f"/sequences/{world.sequence.id}/enroll/emails"
    too_many = ", ".join(f"p{i}@corp.example" for i in range(501))
    refused = rep.client.post(path, data={"csrf_token": rep.token, "emails": too_many})
    assert refused.status_code == 422 and "at most 500" in refused.text
    xss = rep.client.post(path, data={"csrf_token": rep.token, "emails": "<script>x</script>"})
    assert "<script>x" not in xss.text
    assert rep.client.get("/sequences/999999/enroll").status_code == 404
    nul = rep.client.get(f"/sequences/{world.sequence.id}/enroll", params={"q": "a\x00"})
    assert nul.status_code == 422
    assert rep.client.post(path, data={"emails": "a@b.example"}).status_code == 403  # no CSRF


def test_resolve_emails_service(ctx, world):
    ann = world.contact("ann@corp.example")
    result = resolve_emails(ctx, "ann@corp.example; x@corp.example; bad@", create_unknown=False)
    assert [c.id for c in result.contacts] == [ann.id]
    assert result.unknown == ["x@corp.example"]
    assert result.invalid == ["bad@"] and result.created == []


def test_pages_offer_enrolling_only_to_whom_the_policy_lets_enroll(ctx, world):
    """A member without the enroll permission sees no Enroll button and is refused the
    pages that lead to enrolling; with it, they are offered again."""
    world.contact("ann@corp.example")
    with ctx.db.transaction() as session:
        session.get(User, world.user.id).can_enroll = False
    set_password(ctx, world.user.id, "pw")
    rep = Ui(ctx, world).sign_in("rep@example.com", "pw", "/tasks")
    sequence = f"/sequences/{world.sequence.id}"
    assert 'id="enroll-contacts"' not in rep.client.get(sequence).text
    assert 'id="enroll-selected"' not in rep.client.get("/contacts").text
    for path in (f"{sequence}/enroll", f"/enroll?sequence={world.sequence.id}"):
        assert rep.client.get(path).status_code == 403, path
    with ctx.db.transaction() as session:
        session.get(User, world.user.id).can_enroll = True
    assert 'id="enroll-contacts"' in rep.client.get(sequence).text
    assert 'id="enroll-selected"' in rep.client.get("/contacts").text
    assert rep.client.get(f"{sequence}/enroll").status_code == 200
