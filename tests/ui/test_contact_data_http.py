"""The web app's side of a contact's data (docs/contact-data.md), over HTTP: an erased
address pasted into a sequence's enroll page is named, never created again."""

from __future__ import annotations

from cadenza.services.crm import contacts


def test_a_pasted_erased_address_is_named_and_not_created(rep, ctx, world):
    gone = world.contact("gone@corp.example")
    contacts.delete_contact(ctx, gone.id)
    path = f"/sequences/{world.sequence.id}/enroll/emails"

    answer = rep.client.post(
        path,
        data={"csrf_token": rep.token, "emails": "Gone@corp.example, new@corp.example",
              "create_unknown": "true"},
    )  # fmt: skip

    assert answer.status_code == 200
    assert 'id="suppressed-emails"' in answer.text and "Gone@corp.example" in answer.text
    assert 'id="created-emails"' in answer.text and "new@corp.example" in answer.text
    assert [c.email for c in contacts.search_contacts(ctx, "corp.example").results] == [
        "new@corp.example"
    ]
