"""The rich-text body editor in Chromium: type, bold a word, insert a token, save,
reload; and the same form still works as plain HTML with scripts off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cadenza.services.crm.contacts import get_contact
from cadenza.services.enrollment import tasks
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.services.sequences.catalog import create_sequence, get_sequence, step_specs
from tests.ui.engine import run_engine

WEBINAR = "Webinar invite"  # demo: two emails


def test_bold_text_and_a_token_are_saved_and_previewed(tab, server_ctx, demo):
    page = tab.page
    webinar = demo.sequence_id(WEBINAR)
    tab.login(path=f"/sequences/{webinar}/edit")
    page.wait_for_selector(".step-preview")
    assert not page.is_visible("#step-1-body")  # the textarea is the hidden posted field
    area = page.locator("#step-1-body-rich")
    area.fill("")
    area.press_sequentially("Hello ")
    page.keyboard.press("Control+b")
    page.keyboard.type("bold")
    page.keyboard.press("Control+b")
    page.keyboard.type(" world, ")
    page.select_option("select[data-target='step-1-body']", "contact.firstname")
    page.keyboard.type("!")
    tab.shot("typed")
    posted = page.input_value("#step-1-body")
    assert "<strong>bold</strong>" in posted and "{{ contact.firstname }}!" in posted

    # The toolbar: select the text and make it a bulleted list.
    page.click("button[aria-label='Bulleted list'] >> nth=0")
    assert "<li>" in page.input_value("#step-1-body")
    page.click("#save-sequence")
    page.wait_for_url(tab.url(f"/sequences/{webinar}"))

    body = step_specs(get_sequence(server_ctx, webinar))[0].body
    assert "<strong>bold</strong>" in body
    assert "{{ contact.firstname }}" in body
    assert "<li>" in body

    # Reload the editor: the stored body is back in the editor and in the preview,
    # with the token rendered for the chosen contact.
    tab.visit(f"/sequences/{webinar}/edit")
    page.wait_for_selector(".step-preview[data-step='1'] .preview-body strong")
    assert page.inner_html("#step-1-body-rich strong") == "bold"
    contact = get_contact(server_ctx, int(page.input_value("#preview_contact")))
    preview = page.inner_text(".step-preview[data-step='1'] .preview-body")
    assert f"Hello bold world, {contact.firstname}!" in preview
    tab.shot("reloaded")


def test_the_body_is_a_plain_textarea_without_scripts(browser, demo_server, server_ctx, demo):
    webinar = demo.sequence_id(WEBINAR)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(demo_server.url + f"/sequences/{webinar}/edit")
        page.fill("#email", "rep@example.com")
        page.fill("#password", "cadenza-demo")
        page.click("button[type=submit]")
        page.wait_for_url(demo_server.url + f"/sequences/{webinar}/edit")
        assert page.locator(".rich-editor").count() == 0
        page.fill("#step-1-body", "<p>Plain <em>HTML</em> {{ contact.company }}</p>")
        page.click("#save-sequence")
        page.wait_for_url(demo_server.url + f"/sequences/{webinar}")
    finally:
        context.close()
    body = step_specs(get_sequence(server_ctx, webinar))[0].body
    assert body == "<p>Plain <em>HTML</em> {{ contact.company }}</p>"


def test_a_manual_email_draft_is_edited_in_the_rich_editor(tab, server_ctx, demo):
    sequence = create_sequence(
        server_ctx,
        demo.user_id,
        "Manual draft",
        steps=[{"type": "manual_email", "subject": "Hi {{ contact.firstname }}",
                "body": "<p>Draft for {{ contact.firstname }}</p>"}],
    )  # fmt: skip
    contact = ContactRequest(demo.contact_id(*demo.reachable()))
    [result] = enroll(server_ctx, EnrollRequest(sequence.id, demo.user_id, [contact]))
    assert result.ok, result
    run_engine(server_ctx, datetime.now(UTC) + timedelta(minutes=1))
    [task] = [t for t in tasks.list_tasks(server_ctx, owner_id=demo.user_id) if t.type == "email"]

    page = tab.page
    tab.login(path=f"/tasks/{task.id}")
    area = page.locator("#body-rich")
    assert area.inner_text().startswith("Draft for ")
    area.click()
    page.keyboard.press("Control+End")
    page.keyboard.type(", with ")
    page.keyboard.press("Control+i")
    page.keyboard.type("notes")
    tab.shot("draft")
    page.click("button:text('Send email')")
    page.wait_for_url(tab.url("/tasks"))
    body = tasks.get_task(server_ctx, task.id).draft_body
    assert body.startswith("<p>Draft for ") and "with <em>notes</em>" in body


def test_the_toolbar_makes_a_link_and_italics(tab, server_ctx, demo):
    page = tab.page
    webinar = demo.sequence_id(WEBINAR)
    tab.login(path=f"/sequences/{webinar}/edit")
    area = page.locator("#step-2-body-rich")
    area.fill("")
    area.press_sequentially("see the docs")
    for _ in range(4):
        page.keyboard.press("Shift+ArrowLeft")  # select "docs"
    page.once("dialog", lambda dialog: dialog.accept("https://example.com/docs"))
    page.click("fieldset[data-step='2'] button[aria-label='Link']")
    page.click("fieldset[data-step='2'] button[aria-label='Italic']")
    posted = page.input_value("#step-2-body")
    assert '<a href="https://example.com/docs">' in posted and "<em>docs</em>" in posted
    page.click("#save-sequence")
    page.wait_for_url(tab.url(f"/sequences/{webinar}"))
    body = step_specs(get_sequence(server_ctx, webinar))[1].body
    assert body.startswith('<p>see the <a href="https://example.com/docs"')
    assert "<em>docs</em></a></p>" in body
