"""The template library's pages, the sequence editor's "Use template…" and the
snippets page over HTTP (no browser; both databases): what each page shows, refusals
shown on the page with nothing written, and another member's private template hidden."""

from __future__ import annotations

import re

from cadenza.services.accounts.users import create_user
from cadenza.services.sequences import snippets
from cadenza.services.sequences import templates_library as library
from cadenza.services.sequences.catalog import get_sequence

BODY = "<p>Hi {{ contact.firstname }}, a quick note.</p>"


def test_library_pages_create_search_preview_and_archive(rep, world):
    post = rep.client.post
    assert "New template" in rep.client.get("/templates/new").text
    refused = post("/templates", data={"csrf_token": rep.token, "name": "Boom", "subject": "S",
                                       "body": '<p>{{ "x" * 10**9 }}</p>'})  # fmt: skip
    assert refused.status_code == 422 and "Template limit reached in body" in refused.text
    assert "Boom" not in rep.client.get("/templates").text
    made = post(
        "/templates",
        data={"csrf_token": rep.token, "name": "Check-in", "subject": "Checking in",
              "body": BODY, "folder": "Follow-ups", "sharing": "team_use"},
        follow_redirects=False,
    )  # fmt: skip
    assert made.status_code == 303
    template_id = int(made.headers["location"].rsplit("/", 1)[1])
    library.create_template(rep.ctx, world.user.id, name="Breakup", subject="Closing the loop",
                            body=BODY)  # fmt: skip

    listed = rep.client.get("/templates", params={"q": "checking"}).text
    assert "Check-in" in listed and "Breakup" not in listed
    by_folder = rep.client.get("/templates", params={"folder": "Follow-ups"}).text
    assert "Check-in" in by_folder and "Breakup" not in by_folder

    page = rep.client.get(f"/templates/{template_id}").text
    assert 'id="template-figures"' in page and "Used in steps" in page
    ann = world.contact(firstname="Ann")
    shown = post(f"/templates/{template_id}/preview",
                 data={"csrf_token": rep.token, "preview_contact": ann.id})  # fmt: skip
    assert "Checking in" in shown.text and "Hi Ann, a quick note." in shown.text

    saved = post(f"/templates/{template_id}",
                 data={"csrf_token": rep.token, "name": "Check-in", "subject": "Still there?",
                       "body": BODY, "folder": "", "sharing": "private"},
                 follow_redirects=False)  # fmt: skip
    assert saved.status_code == 303
    assert library.get_template(rep.ctx, None, template_id).subject == "Still there?"
    post(f"/templates/{template_id}/archive", data={"csrf_token": rep.token, "archived": "yes"})
    assert "Check-in" not in rep.client.get("/templates").text
    assert "Check-in" in rep.client.get("/templates", params={"archived": "1"}).text


def test_the_editor_uses_a_template_by_reference_or_as_a_copy(rep, ctx, world):
    template = library.create_template(ctx, world.user.id, name="Opener", subject="Opening",
                                       body=BODY)  # fmt: skip
    olive = create_user(ctx, "olive@example.com")
    private = library.create_template(ctx, olive.id, name="Olive's", subject="Hers", body=BODY)
    form = {
        "csrf_token": rep.token, "name": "Follow-up", "step_count": "1",
        "step-1-type": "email", "step-1-subject": "Typed", "step-1-body": "<p>Typed</p>",
        "step-1-pick": str(template.id), "follow_up_days": "weekdays",
    }  # fmt: skip
    path = f"/sequences/{world.sequence.id}/edit"
    copied = rep.client.post(path, data={**form, "step-1-pick_mode": "copy",
                                         "op": "template:1"}).text  # fmt: skip
    assert 'value="Opening"' in copied and 'name="step-1-template_id"' not in copied
    referenced = rep.client.post(path, data={**form, "op": "template:1"}).text
    assert re.search(rf'name="step-1-template_id" value="{template.id}"', referenced)
    assert "by reference" in referenced and "Opener" in referenced
    hidden = rep.client.post(path, data={**form, "step-1-pick": str(private.id),
                                         "op": "template:1"})  # fmt: skip
    assert hidden.status_code == 404 and f"template {private.id} does not exist" in hidden.text

    saved = rep.client.post(path, data={**form, "step-1-template_id": str(template.id),
                                        "op": "save"}, follow_redirects=False)  # fmt: skip
    assert saved.status_code == 303
    [step] = get_sequence(ctx, world.sequence.id).steps
    assert (step.template_id, step.subject, step.body) == (template.id, "Opening", BODY)
    # Snippets reach the editor for the #name autocomplete and the Snippet menu.
    snippets.create_snippet(ctx, world.user.id, name="pricing", body="See pricing")
    editor = rep.client.get(path).text
    assert 'id="snippet-data"' in editor and '"name": "pricing"' in editor


def test_snippets_page(rep, ctx, world):
    page = {"csrf_token": rep.token, "name": "sig", "body": "Best, {{ sender.firstname }}"}
    assert rep.client.post("/snippets", data=page, follow_redirects=False).status_code == 303
    again = rep.client.post("/snippets", data=page)
    assert again.status_code == 409 and "already have a snippet named #sig" in again.text
    bad = rep.client.post("/snippets", data={**page, "name": "Not OK"})
    assert bad.status_code == 422 and "shortcut" in bad.text
    [snippet] = snippets.list_snippets(ctx, world.user.id)
    listed = rep.client.get("/snippets").text
    assert "#sig" in listed and "Delete #sig" in listed
    rep.client.post(f"/snippets/{snippet.id}/delete", data={"csrf_token": rep.token})
    assert snippets.list_snippets(ctx, world.user.id) == []
