"""The issue's main flow in real Chromium: select contacts, fix a missing token, remove
one, send later in Europe/Rome, enroll, watch the timeline, run the engine, read the
email in the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cadenza.services.accounts import mailboxes
from cadenza.services.delivery import outbox
from cadenza.services.enrollment import views as enrollment_views
from cadenza.store.models import Contact
from tests.support.smtp_sink import SmtpSink
from tests.ui.engine import run_engine

ROME = ZoneInfo("Europe/Rome")


def test_enroll_two_contacts_send_later_in_rome_then_outbox(tab, server_ctx, demo):
    # Three of the demo's Usmans: Hana (reachable), one with no first name, one unsubscribed.
    usman = Contact.lastname == "Usman"
    READY = demo.contact_id(usman, Contact.firstname == "Hana", *demo.reachable())
    NO_FIRSTNAME = demo.contact_id(usman, Contact.firstname.is_(None), *demo.reachable())
    UNSUBSCRIBED = demo.contact_id(usman, Contact.unsubscribed_at.is_not(None))
    page = tab.page
    with SmtpSink() as sink:
        mailboxes.update_mailbox(
            server_ctx,
            demo.mailbox_id,
            {"transport": "smtp", "smtp_host": sink.host, "smtp_port": sink.port,
             "smtp_security": "none"},
        )  # fmt: skip
        tab.login()
        tab.shot("contacts-index")
        page.fill("input[name=q]", "usman")
        page.click("form.filters button[type=submit]")
        page.wait_for_url("**/contacts?q=usman*")
        for contact_id in (READY, NO_FIRSTNAME, UNSUBSCRIBED):
            page.check(f".row-check[value='{contact_id}']")
        assert page.inner_text("#selected-count") == "3 selected"
        tab.shot("contacts-selected")
        page.click("#enroll-selected")
        page.wait_for_url("**/enroll?*")

        # The dry run: the missing token in red, the unsubscribed contact's reason.
        page.select_option("#sequence", label="Inbound lead follow-up")
        page.wait_for_selector(".tokens-missing")
        missing = page.locator(".token-chip.missing summary")
        assert "contact.firstname" in missing.inner_text()
        assert missing.evaluate("e => getComputedStyle(e).color") == "rgb(180, 35, 24)"
        refused = page.locator(f"tr[data-contact='{UNSUBSCRIBED}']")
        assert "unsubscribed" in refused.inner_text()
        assert "the contact unsubscribed" in refused.inner_text()
        tab.shot("enroll-dialog-dry-run")

        # Give the token a value for everyone.
        missing.click()
        page.fill(".token-input[data-token='contact.firstname']", "Friend")
        tab.shot("enroll-dialog-token")
        page.click(".token-apply[data-token='contact.firstname']")
        page.wait_for_selector(".tokens-set")
        assert page.locator(".tokens-missing").count() == 0
        assert "ready" in page.locator(f"tr[data-contact='{NO_FIRSTNAME}']").inner_text()

        # A contact's own emails, then take the unsubscribed one out.
        page.click(f".panel-tab[data-panel='c{READY}']")
        assert page.locator(f"#panel-c{READY}").is_visible()
        assert not page.locator("#panel-all").is_visible()
        tab.shot("enroll-dialog-contact-panel")
        page.fill("#panel-search", "zo")
        assert not page.locator(f".panel-contact[data-contact='{READY}']").is_visible()
        page.fill("#panel-search", "")
        page.click(f".remove-contact[data-remove='{UNSUBSCRIBED}']")
        page.wait_for_function(
            f"() => !document.querySelector(\"tr[data-contact='{UNSUBSCRIBED}']\")"
        )

        # Send later: tomorrow 09:00 in Europe/Rome.
        tomorrow = (datetime.now(ROME) + timedelta(days=1)).date()
        page.fill("#timezone", "Europe/Rome")
        page.check("input[name=send][value=later]")
        page.fill("#send_date", tomorrow.isoformat())
        page.fill("#send_time", "09:00")
        page.dispatch_event("#send_time", "change")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.schedule li')].some(li =>"
            " li.textContent.includes('09:00 CET') || li.textContent.includes('09:00 CEST'))"
        )
        button = page.locator("#enroll-submit")
        assert button.inner_text().strip() == "Enroll 2 contacts"
        # The mailbox now sends over SMTP and reads no inbox: the dialog says replies are
        # not detected, and enrolling is refused until the person confirms it.
        assert "replies not detected" in page.inner_text("#enroll-dialog")
        assert "keeps getting the follow-ups" in page.inner_text("#enroll-warnings")
        # every preview asked for has come back (under load one can arrive after the
        # schedule shows 09:00, and its swap replaces the button being clicked)
        page.wait_for_function("() => !document.querySelector('.htmx-request')")
        page.once("dialog", lambda d: d.accept())
        button.click()
        page.wait_for_selector("#error-mailbox:has-text('confirm to enroll anyway')")
        page.check("#confirm_warnings")
        page.wait_for_selector("#enroll-submit:not([disabled])")
        tab.shot("enroll-dialog-ready")
        dialogs = []
        page.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
        page.locator("#enroll-submit").click()
        page.wait_for_selector(".result-list")
        assert dialogs and "Enroll 2 contacts" in dialogs[0]
        assert page.locator(".result-list li.ok").count() == 2
        tab.shot("enroll-result")

        # Both on the enrollments page, with their timelines in their time and ours.
        tab.visit("/enrollments", "enrollments")
        cards = page.locator("article.enrollment")
        assert cards.count() == 2
        first_due = datetime.combine(tomorrow, time(9, 0), ROME)
        for index in range(2):
            text = cards.nth(index).inner_text()
            assert f"{first_due:%d %b %Y} 09:00 {first_due.tzname()}" in text
            assert "(yours)" in text and "Step 3" in text

        # The engine, with its clock just past 09:00 Rome tomorrow, sends both.
        run_engine(server_ctx, first_due.astimezone(UTC) + timedelta(minutes=1), until_sent=2)
        assert sink.message_count == 2
        tab.visit("/outbox", "outbox")
        rows = page.locator("table.messages tbody tr")
        assert rows.count() == 2
        page.click("table.messages a.subject >> nth=0")
        page.wait_for_selector("iframe.email-body")
        tab.shot("outbox-message")
        bodies = []
        for message in outbox.list_messages(server_ctx, status="sent"):
            tab.visit(f"/outbox/{message.id}")
            frame = page.frame_locator("iframe.email-body")
            bodies.append(frame.locator("body").inner_text())
        assert any(body.startswith("Hi Friend,") for body in bodies), bodies
        assert any(body.startswith("Hi Hana,") for body in bodies), bodies
        views = [
            enrollment_views.get_enrollment(server_ctx, e.id)
            for e in enrollment_views.list_enrollments(server_ctx)
        ]
        assert sorted(v.enrollment.contact_id for v in views) == [READY, NO_FIRSTNAME]
        assert all(v.enrollment.timezone == "Europe/Rome" for v in views)
