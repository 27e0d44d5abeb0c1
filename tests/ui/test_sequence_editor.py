"""The sequence editor round trip in Chromium: preview, add, reorder, edit, delete, save."""

from __future__ import annotations

from cadenza.services.crm.contacts import get_contact
from cadenza.services.sequences.catalog import get_sequence, step_specs

WEBINAR = "Webinar invite"  # demo: two emails, the second in the thread of the first


def test_edit_a_sequence_and_save_it(tab, server_ctx, demo):
    webinar = demo.sequence_id(WEBINAR)
    page = tab.page
    tab.login(path=f"/sequences/{webinar}")
    tab.shot("sequence")
    page.click("#edit-sequence")
    page.wait_for_selector(".step-preview")
    chosen = get_contact(server_ctx, int(page.input_value("#preview_contact")))
    subject = page.inner_text(".step-preview[data-step='1'] .preview-subject")
    assert subject == f"Invitation: scaling outbound in {chosen.properties['industry']}"
    greeting = f"Hi {chosen.firstname or 'there'},"
    assert greeting in page.inner_text(".step-preview[data-step='1'] .preview-body")
    tab.shot("editor")

    # Add a task, move it between the two emails, give it a title.
    page.click("button[value='add:task']")
    page.wait_for_selector("fieldset[data-step='3']")
    assert "Not saved yet" in page.inner_text(".notice")
    page.click("button[value='up:3']")
    page.wait_for_selector("fieldset[data-step='2'] input[name='step-2-task_title']")
    page.fill("input[name='step-2-task_title']", "Call {{ contact.firstname }} about the webinar")
    page.check("input[name='step-2-continue']")
    # The token picker puts a token into the first email's body.
    page.click("#step-1-body-rich")
    page.keyboard.press("End")
    page.select_option("select[data-target='step-1-body']", "contact.company")
    assert "{{ contact.company }}" in page.inner_text("#step-1-body-rich")
    tab.shot("editor-changed")

    # A broken step is refused on its own step, nothing saved.
    page.fill("#step-1-body-rich", "")
    page.click("#save-sequence")
    page.wait_for_selector("#step-1-error")
    tab.errors.clear()  # the 422 answer is logged by Chromium as a failed resource
    assert "needs a body" in page.inner_text("#step-1-error")
    assert len(step_specs(get_sequence(server_ctx, webinar))) == 2
    page.fill("#step-1-body-rich", "Hi {{ contact.firstname | default('there') }} at ")
    page.select_option("select[data-target='step-1-body']", "contact.company")
    page.click("#save-sequence")
    page.wait_for_url(tab.url(f"/sequences/{webinar}"))
    tab.shot("saved")

    specs = step_specs(get_sequence(server_ctx, webinar))
    assert [s.type.value for s in specs] == ["email", "task", "email"]
    assert specs[1].task_title == "Call {{ contact.firstname }} about the webinar"
    assert specs[1].continue_without_completing
    assert specs[2].thread_with_step == 1
    assert "{{ contact.company }}" in specs[0].body

    # Delete the task again.
    tab.visit(f"/sequences/{webinar}/edit")
    page.click("button[value='delete:2']")
    page.wait_for_selector("fieldset[data-step='2'] #step-2-body-rich")
    page.click("#save-sequence")
    page.wait_for_url(tab.url(f"/sequences/{webinar}"))
    assert [s.type.value for s in step_specs(get_sequence(server_ctx, webinar))] == [
        "email",
        "email",
    ]


def test_saving_unchanged_keeps_every_field_the_api_set(tab, demo_server, server_ctx):
    """Issue 11 item 1: open the editor, press Save, and nothing the API set is lost."""
    from cadenza.services.accounts.users import create_token, find_user_by_email
    from tests.support.full_sequence import (
        FULL_SEQUENCE,
        assert_every_field_set,
        without_volatile,
    )

    rep = find_user_by_email(server_ctx, "rep@example.com")
    token = create_token(server_ctx, rep.id, "round trip").token

    def read(sequence_id: int) -> dict:
        # A fresh connection each time: the browser steps in between can outlast the
        # server's keep-alive, and a reused connection would then be closed under us.
        with demo_server.client(token) as api:
            return api.get(f"/api/v1/sequences/{sequence_id}").json()

    with demo_server.client(token) as api:
        created = api.post("/api/v1/sequences", json=FULL_SEQUENCE)
    assert created.status_code == 201, created.text
    before = read(created.json()["id"])
    assert_every_field_set(before)

    page = tab.page
    tab.login(path=f"/sequences/{before['id']}/edit")
    page.wait_for_selector(".step-preview")
    page.click("#sequence-editor summary")
    tab.shot("every-setting")
    page.click("#save-sequence")
    page.wait_for_url(tab.url(f"/sequences/{before['id']}"))

    assert without_volatile(read(before["id"])) == without_volatile(before)
