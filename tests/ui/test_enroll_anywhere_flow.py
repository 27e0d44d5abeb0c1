"""Issue 11's browser flows on the demo data (Chromium): enroll all members of a list
with a second mailbox chosen in the dialog (item 3), enroll from a sequence page by
search and by pasted addresses (item 7), and a contacts selection spanning pages plus
"select all N matching" (item 8)."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.accounts.users import find_user_by_email
from cadenza.services.crm import contact_index
from cadenza.services.crm.contacts import find_by_email
from cadenza.services.enrollment import list_jobs as list_enrollment
from cadenza.services.enrollment import views as enrollment_views
from cadenza.services.sequences.catalog import list_sequences
from tests.ui.conftest import DEMO_EMAIL


def _accept_confirm(page) -> list[str]:
    seen: list[str] = []
    page.once("dialog", lambda d: (seen.append(d.message), d.accept()))
    return seen


def test_enroll_all_members_of_a_list_choosing_the_mailbox(tab, server_ctx):
    rep = find_user_by_email(server_ctx, DEMO_EMAIL)
    second = create_mailbox(server_ctx, rep.id, "rep-two@example.com", from_name="Riley Two")
    page = tab.page
    tab.login(path="/lists")
    page.click("a.list-name:has-text('Conference leads')")
    page.click("#enroll-list-submit")
    page.wait_for_url("**/enroll?*")
    page.wait_for_selector("#enroll-check #enroll-all-submit")
    assert "members of list" in page.inner_text("#enroll-list-scope")
    page.select_option("#mailbox", str(second.id))
    page.fill("#timezone", "Asia/Tokyo")
    page.locator("#timezone").dispatch_event("change")
    page.wait_for_selector("#enroll-check .check-results td:has-text('ready')")
    tab.shot("enroll-whole-list")
    confirmed = _accept_confirm(page)
    page.click("#enroll-all-submit")
    page.wait_for_url("**/lists/jobs/*")
    assert confirmed and "Enroll all" in confirmed[0]
    tab.shot("enroll-whole-list-job")
    job_id = int(page.url.rsplit("/", 1)[1])
    list_enrollment.run_due(server_ctx)
    job = list_enrollment.get_job(server_ctx, job_id)
    assert (job.status, job.mailbox_id) == ("done", second.id) and job.enrolled > 0
    made = enrollment_views.list_enrollments(server_ctx, limit=1000)
    assert len(made) == job.enrolled
    assert {(e.mailbox_id, e.timezone) for e in made} == {(second.id, "Asia/Tokyo")}


def test_enroll_from_a_sequence_page_by_search_and_by_pasting(tab, server_ctx):
    sequence = list_sequences(server_ctx)[0]
    spec = contact_index.ContactFilter(status="reachable", enrolled="no")
    someone = contact_index.browse_contacts(server_ctx, spec, per_page=1).contacts[0]
    page = tab.page
    tab.login(path=f"/sequences/{sequence.id}")
    page.click("#enroll-contacts")
    page.wait_for_url(f"**/sequences/{sequence.id}/enroll")
    tab.shot("sequence-enroll-contacts")
    page.fill("#pick-q", someone.email)
    page.click("#contact-search button[type=submit]")
    page.wait_for_selector(f"#picked .row-check[value='{someone.id}']")
    page.check(f"#picked .row-check[value='{someone.id}']")
    page.click("#enroll-selected")
    page.wait_for_url("**/enroll?*")
    page.wait_for_selector(f"tr.ok[data-contact='{someone.id}']")
    assert page.locator("#sequence option:checked").inner_text() == sequence.name
    page.click("#enroll-submit")
    page.wait_for_selector(".result-list li.ok")
    [made] = enrollment_views.list_enrollments(server_ctx, contact_id=someone.id)
    assert made.sequence_id == sequence.id

    tab.visit(f"/sequences/{sequence.id}/enroll")
    page.fill("#emails", "Newcomer <newcomer@prospect.example>\nnot-an-address")
    page.click("#find-emails")
    page.wait_for_selector("#unknown-emails")
    assert "not-an-address" in page.inner_text("#invalid-emails")
    with server_ctx.db.read() as session:
        assert find_by_email(session, "newcomer@prospect.example") is None
    tab.shot("sequence-enroll-pasted-unknown")
    page.click("#create-unknown")
    page.wait_for_selector("#created-emails")
    page.click("#enroll-pasted")
    page.wait_for_url("**/enroll?*")
    with server_ctx.db.read() as session:
        newcomer = find_by_email(session, "newcomer@prospect.example")
    page.wait_for_selector(f"#enroll-check tr[data-contact='{newcomer.id}']")
    tab.shot("sequence-enroll-pasted-dialog")


def test_a_selection_spans_pages_and_select_all_matching(tab, server_ctx):
    page = tab.page
    tab.login(path="/contacts")
    first_page = page.locator(".row-check")
    picked = [first_page.nth(0).get_attribute("value"), first_page.nth(1).get_attribute("value")]
    page.check(f".row-check[value='{picked[0]}']")
    page.check(f".row-check[value='{picked[1]}']")
    page.click("a[rel=next]")
    page.wait_for_url("**page=2*")
    third = page.locator(".row-check").nth(0).get_attribute("value")
    page.check(f".row-check[value='{third}']")
    assert page.inner_text("#selected-count") == "3 selected (2 on other pages)"
    tab.shot("selection-across-pages")
    page.click("#enroll-selected")
    page.wait_for_url("**/enroll?*")
    page.wait_for_selector("#enroll-check .check-results")
    chosen = page.locator(".panel-contact").evaluate_all("els => els.map(e => e.dataset.contact)")
    assert sorted(chosen) == sorted([*picked, third])

    # "Select all N matching": more than the bulk limit, enrolled in batches of 50.
    tab.visit("/contacts?status=reachable&enrolled=no")
    spec = contact_index.ContactFilter(status="reachable", enrolled="no")
    total = contact_index.browse_contacts(server_ctx, spec).total
    assert total > 50
    assert page.inner_text("#selected-count") == "0 selected"  # the dialog took the last one
    page.click("#select-matching")
    expect(page.locator("#selected-count")).to_have_text(re.compile(rf"^{total} selected"))
    tab.shot("selection-all-matching")
    page.click("#enroll-selected")
    page.wait_for_url("**/enroll?*")
    page.wait_for_selector("#enroll-check .check-results", timeout=60_000)
    assert page.locator(".panel-contact").count() == total
    confirmed = _accept_confirm(page)
    page.click("#enroll-submit")
    page.wait_for_selector(".result-list", timeout=60_000)
    results = page.locator(".result-list li")
    assert results.count() == total
    enrolled = page.locator(".result-list li.ok").count()
    made = enrollment_views.list_enrollments(server_ctx, limit=1000)
    assert enrolled > 50 and enrolled == len(made)
    # The button asked for those the dry run found ready, and said how many it skips.
    assert confirmed and f"Enroll {enrolled} contacts?" in confirmed[0]
    if enrolled < total:
        assert f"{total - enrolled} of the {total} cannot be enrolled" in confirmed[0]
