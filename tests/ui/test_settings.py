"""Settings in Chromium: add an SMTP mailbox and test it against a real sink, add a user,
create an API token."""

from __future__ import annotations

from cadenza.services.accounts import users
from tests.support.smtp_sink import SmtpSink


def test_settings_mailbox_user_and_token(tab, server_ctx):
    page = tab.page
    tab.login(path="/settings")
    tab.shot("settings")
    with SmtpSink() as sink:
        page.click("details.add summary >> text=Add a mailbox")
        form = page.locator("#add-mailbox")
        form.locator("input[name=from_email]").fill("riley@corp.example")
        form.locator("input[name=from_name]").fill("Riley at Corp")
        form.locator("select[name=transport]").select_option("smtp")
        form.locator("input[name=smtp_host]").fill(sink.host)
        form.locator("input[name=smtp_port]").fill(str(sink.port))
        form.locator("select[name=smtp_security]").select_option("none")
        form.locator("button[type=submit]").click()
        added = page.locator("article.mailbox", has_text="riley@corp.example")
        added.locator("button:text('Test connection')").click()
        added = page.locator("article.mailbox", has_text="riley@corp.example")
        assert "Connection works" in added.inner_text()
        tab.shot("mailbox-tested")

    page.click("details.add summary >> text=Add a user")
    form = page.locator("#add-user")
    form.locator("input[name=email]").fill("sam@corp.example")
    form.locator("select[name=role]").select_option("viewer")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("tr[data-user] >> text=sam@corp.example")
    assert users.find_user_by_email(server_ctx, "sam@corp.example").role == "viewer"

    page.fill("#token-name", "laptop")
    page.click("button:text('Create token')")
    token = page.inner_text("#new-token")
    assert users.user_for_token(server_ctx, token).email == "rep@example.com"
    tab.shot("token-created")
