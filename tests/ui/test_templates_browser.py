"""In Chromium: a step built from a library template (by reference), and a snippet
inserted by typing `#name` in a body and from the editor's Snippet menu; saved, and the
sequence then holds the template's reference and the snippet's text (copied)."""

from __future__ import annotations

from cadenza.services.sequences import snippets
from cadenza.services.sequences import templates_library as library
from cadenza.services.sequences.catalog import get_sequence

WEBINAR = "Webinar invite"  # demo: two emails


def test_a_step_from_a_template_and_snippets_in_the_body(tab, server_ctx, demo):
    page = tab.page
    rep = demo.user_id
    template = library.create_template(
        server_ctx, rep, name="Webinar nudge", subject="Seats are going, {{ contact.firstname }}",
        body="<p>Only a few seats left.</p>", folder="Events",
    )  # fmt: skip
    snippets.create_snippet(server_ctx, rep, name="calendar", body="Book a time with me.")
    snippets.create_snippet(server_ctx, rep, name="case-study", body="Read how Acme did it.")
    webinar = demo.sequence_id(WEBINAR)
    tab.login(path=f"/sequences/{webinar}/edit")
    page.wait_for_selector(".step-preview")

    page.select_option("#step-2-pick", str(template.id))
    page.click("#step-2-use-template")
    page.wait_for_selector("#step-2-template")
    assert page.input_value("input[name='step-2-subject']") == template.subject
    assert page.get_attribute("input[name='step-2-subject']", "readonly") is not None
    page.wait_for_selector(".step-preview[data-step='2'] .preview-body")
    # a threaded follow-up: the template's body, under "Re: " its thread's subject
    assert "Only a few seats left." in page.inner_text(".step-preview[data-step='2']")

    # `#ca` offers both snippets; the arrow picks the second, Enter inserts it.
    area = page.locator("#step-1-body-rich")
    area.click()
    page.keyboard.press("Control+End")
    page.keyboard.type(" #ca")
    page.wait_for_selector("#snippet-suggest li[data-name='case-study']")
    page.keyboard.type("l")  # narrows to #calendar
    assert page.locator("#snippet-suggest li").count() == 1
    page.keyboard.press("Enter")
    assert page.is_hidden("#snippet-suggest")
    posted = page.input_value("#step-1-body")
    assert "Book a time with me." in posted and "#cal" not in posted
    # The toolbar's Snippet menu inserts at the caret too.
    page.select_option("#step-1-body-rich >> xpath=.. >> .snippet-menu", label="#case-study")
    assert "Read how Acme did it." in page.input_value("#step-1-body")
    tab.shot("template-and-snippets")

    page.click("#save-sequence")
    page.wait_for_url(tab.url(f"/sequences/{webinar}"))
    first, second = get_sequence(server_ctx, webinar).steps
    assert (second.template_id, second.subject) == (template.id, template.subject)
    assert "Book a time with me." in first.body and "Read how Acme did it." in first.body
    assert first.template_id is None
