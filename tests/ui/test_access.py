"""In the browser: sign-in and redirect back, CSRF refusals, a viewer without the Enroll
button, and a contact whose name is markup rendered inert on every page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cadenza.services.crm import contacts
from cadenza.services.enrollment import views as enrollment_views
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from tests.ui.engine import run_engine

XSS = {
    "firstname": '<img src=x onerror="window.__xss=1">',
    "lastname": "<script>window.__xss=2</script>",
    "company": '"><svg onload="window.__xss=3">',
    "email": "xss@evil.example",
    "timezone": "Europe/Paris",
}


def test_sign_in_redirects_back_and_wrong_password_is_refused(tab):
    page = tab.page
    tab.visit("/sequences")
    assert "/login?next=/sequences" in page.url
    tab.shot("login")
    page.fill("#email", "rep@example.com")
    page.fill("#password", "wrong")
    page.click("button[type=submit]")
    assert "wrong email or password" in page.inner_text("#login-error")
    tab.errors.clear()  # the 401 answer itself is logged by Chromium as a failed resource
    page.fill("#password", "cadenza-demo")
    page.click("button[type=submit]")
    page.wait_for_url(tab.url("/sequences"))
    tab.shot("sequences")
    assert page.locator("table.sequences tbody tr").count() == 3
    page.click("button:text('Sign out')")
    page.wait_for_url("**/login")
    tab.visit("/contacts")
    assert "/login" in page.url


def test_unsafe_requests_without_the_csrf_token_are_refused(tab, server_ctx, demo):
    sequence_id = demo.sequence_id("Inbound lead follow-up")
    contact = ContactRequest(demo.contact_id(*demo.reachable()))
    [result] = enroll(server_ctx, EnrollRequest(sequence_id, demo.user_id, [contact]))
    tab.login()
    request = tab.page.request
    url = tab.url(f"/enrollments/{result.enrollment_id}/pause")
    for headers, form in (({}, {}), ({}, {"csrf_token": "forged"}), ({"X-CSRF-Token": "x"}, {})):
        answer = request.post(url, headers=headers, form=form, max_redirects=0)
        assert answer.status == 403
        assert "csrf_failed" in answer.text()
    assert enrollment_views.get_enrollment(server_ctx, result.enrollment_id).enrollment.state == (
        "active"
    )
    # The same action from the page, which carries the token, works.
    tab.visit(f"/enrollments/{result.enrollment_id}", "enrollment")
    tab.page.click("button:text('Pause')")
    tab.page.wait_for_selector(".badge.state-paused")
    tab.shot("enrollment-paused")


def test_a_viewer_sees_contacts_but_no_enroll_button(tab, demo_server, demo):
    demo_server.cli("user", "create", "viewer@example.com", "--role", "viewer", "--password", "pw")
    tab.login("viewer@example.com", "pw")
    page = tab.page
    tab.shot("contacts")
    assert page.locator("table.contacts tbody tr").count() == 25
    assert page.locator("#enroll-selected").count() == 0
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing spills sideways
    tab.shot("contacts-phone")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    contact_id = demo.contact_id(*demo.reachable())
    tab.visit(f"/contacts/{contact_id}", "contact")
    assert page.locator("#enroll-contact").count() == 0
    answer = page.request.get(tab.url(f"/enroll?contact={contact_id}"))
    assert answer.status == 403 and "permission_denied" in answer.text()


def test_markup_in_a_contact_is_shown_as_text_everywhere(tab, server_ctx):
    contact = contacts.create_contact(server_ctx, XSS)
    name = f"{XSS['firstname']} {XSS['lastname']}"
    page = tab.page
    tab.login()

    def inert(path: str, shot: str) -> None:
        tab.visit(path, shot)
        assert page.evaluate("() => window.__xss") is None
        assert name in page.inner_text("main") or XSS["company"] in page.inner_text("main")

    inert("/contacts?q=evil", "contacts")
    inert(f"/contacts/{contact.id}", "record")
    page.click("#enroll-contact")
    page.select_option("#sequence", label="Outbound: VP Sales")
    page.wait_for_selector("#enroll-submit")
    assert page.inner_text("#enroll-submit").strip() == f"Enroll {name}"
    assert page.evaluate("() => window.__xss") is None
    tab.shot("enroll-dialog")
    page.click("#enroll-submit")
    page.wait_for_selector(".result-list li.ok")
    tab.shot("enroll-result")
    assert page.evaluate("() => window.__xss") is None
    inert("/enrollments", "enrollments")
    run_engine(server_ctx, datetime.now(UTC) + timedelta(minutes=1), until_sent=1)
    inert("/outbox", "outbox")
    page.click("table.messages a.subject")
    page.wait_for_selector("iframe.email-body")
    assert XSS["company"] in page.inner_text("h1.subject")
    assert page.evaluate("() => window.__xss") is None
    tab.shot("message")


def test_keyboard_only_sign_in_and_selection_with_visible_focus(tab):
    page = tab.page
    tab.visit("/contacts")
    assert page.evaluate("() => document.activeElement.id") == "email"  # autofocus
    page.keyboard.type("rep@example.com")
    page.keyboard.press("Tab")
    page.keyboard.type("cadenza-demo")
    page.keyboard.press("Enter")
    page.wait_for_url(tab.url("/contacts"))
    page.focus("#select-all")
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineWidth")
    assert outline == "3px"
    page.keyboard.press("Space")
    assert page.inner_text("#selected-count") == "25 selected"
    for _ in range(10):  # past the sortable column headers to the first row's checkbox
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.classList.contains('row-check')"):
            break
    page.keyboard.press("Space")
    assert page.inner_text("#selected-count") == "24 selected"
    tab.shot("keyboard-selection")
