"""Issue 11 item 10 in Chromium: the enroll button counts who can be enrolled, is
disabled when nobody can, and a contact's own panel enrolls just that contact."""

from __future__ import annotations

from cadenza.services.enrollment import views as enrollment_views

WEBINAR = 3
READY = (1, 2)  # demo contacts that can be enrolled
REFUSED = (6, 8, 12)  # demo: no email address, bounced, unsubscribed


def test_the_button_follows_who_can_be_enrolled(tab, server_ctx):
    page = tab.page
    query = "&".join(f"contact={c}" for c in (*READY, *REFUSED))
    tab.login(path=f"/enroll?{query}&sequence={WEBINAR}")
    page.wait_for_selector("#enroll-check .check-results")
    assert page.inner_text("#enroll-ready-count") == "2 of 5 can be enrolled."
    button = page.locator("#enroll-submit")
    assert button.inner_text().strip() == "Enroll 2 contacts" and button.is_enabled()
    assert page.locator(f"#enroll-one-{REFUSED[0]}").is_disabled()
    tab.shot("two-of-five")

    # A contact's own panel: enroll just that one.
    page.click(f".panel-tab[data-panel='c{READY[1]}']")
    page.click(f"#enroll-one-{READY[1]}")
    page.wait_for_selector(".result-list")
    assert page.locator(".result-list li.ok").count() == 1
    enrolled = enrollment_views.list_enrollments(server_ctx)
    assert [e.contact_id for e in enrolled] == [READY[1]]
    tab.shot("enrolled-one")

    # Nobody ready: nothing to press.
    query = "&".join(f"contact={c}" for c in (READY[1], *REFUSED))
    tab.visit(f"/enroll?{query}&sequence={WEBINAR}")
    page.wait_for_selector("#enroll-check .check-results")
    assert page.inner_text("#enroll-ready-count") == "0 of 4 can be enrolled."
    assert page.locator("#enroll-submit").is_disabled()
    tab.shot("none-ready")
