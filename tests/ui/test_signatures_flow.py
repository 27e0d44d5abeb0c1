"""In Chromium: a rep sets a signature and meeting link in Settings, inserts both into a
step with the editor's buttons, and the live preview shows the signature; saved as tokens."""

from __future__ import annotations

from cadenza.services.accounts import profile
from cadenza.services.sequences.catalog import get_sequence, step_specs

WEBINAR = "Webinar invite"  # demo: two emails


def test_signature_set_in_settings_is_inserted_and_previewed(tab, server_ctx, demo):
    page = tab.page
    tab.login(path="/settings")
    page.fill("#signature_html", "<p><strong>Riley</strong> · Sales</p><script>x()</script>")
    page.fill("#meeting_link", "https://cal.example/riley/intro")
    page.click("#profile-form button[type=submit]")
    page.wait_for_selector("#profile-notice")
    stored = profile.get_profile(server_ctx, None, demo.user_id)
    assert stored.signature_html == "<p><strong>Riley</strong> · Sales</p>"
    assert stored.meeting_link == "https://cal.example/riley/intro"
    tab.shot("settings")

    webinar = demo.sequence_id(WEBINAR)
    tab.visit(f"/sequences/{webinar}/edit")
    page.wait_for_selector(".step-preview[data-step='1']")
    page.click("#step-1-body-rich")
    page.keyboard.press("Control+End")
    page.click("button[aria-label='Insert signature into step 1']")
    page.click("button[aria-label='Insert meeting link into step 1']")
    posted = page.input_value("#step-1-body")
    assert "{{ sender.signature }}" in posted
    assert '<a href="{{ sender.meeting_link }}">Book a meeting</a>' in posted
    page.wait_for_selector(".step-preview[data-step='1'] .preview-body strong:has-text('Riley')")
    preview = page.locator(".step-preview[data-step='1'] .preview-body")
    assert "Riley · Sales" in preview.inner_text()
    assert preview.locator("a", has_text="Book a meeting").get_attribute("href") == (
        "https://cal.example/riley/intro"
    )
    tab.shot("preview")
    page.click("#save-sequence")
    page.wait_for_url(tab.url(f"/sequences/{webinar}"))
    body = step_specs(get_sequence(server_ctx, webinar))[0].body
    assert "{{ sender.signature }}" in body and "{{ sender.meeting_link }}" in body
