"""Issue 11 item 12 in Chromium: the sequence page, the editor preview and the enroll
dialog's "Start at" show filled-in text (sample or the contact's data), with the "Re:"
of a threaded step, never template code."""

from __future__ import annotations

from cadenza.services.crm.contacts import get_contact

WEBINAR = 3  # demo: an invitation, then a reply in its thread


def test_steps_read_as_text_everywhere(tab, server_ctx):
    page = tab.page
    tab.login(path=f"/sequences/{WEBINAR}")
    headlines = page.locator(".step-headline").all_inner_texts()
    assert headlines == [
        "Invitation: scaling outbound in software",
        "Re: Invitation: scaling outbound in software",
    ]
    tab.shot("sequence-steps")

    tab.visit(f"/sequences/{WEBINAR}/edit")
    page.wait_for_selector(".step-preview[data-step='2']")
    chosen = get_contact(server_ctx, int(page.input_value("#preview_contact")))
    industry = chosen.properties["industry"]
    second = page.inner_text(".step-preview[data-step='2'] .preview-subject")
    assert second == f"Re: Invitation: scaling outbound in {industry}"
    tab.shot("editor-preview")

    contact = get_contact(server_ctx, 1)
    tab.visit(f"/enroll?contact=1&sequence={WEBINAR}", "enroll-start-at")
    choices = page.locator("#start_step option").all_inner_texts()
    subject = f"Invitation: scaling outbound in {contact.properties['industry']}"
    assert choices == [f"Step 1: email — {subject}", f"Step 2: email — Re: {subject}"]
    assert not any("{{" in c for c in choices)
