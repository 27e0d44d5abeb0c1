"""Testing a mailbox's inbox from the settings page and the API (issue 14 §2): a login
to a real dovecot and out again, under the connection tests' brakes, on both databases."""

from __future__ import annotations

import pytest

from cadenza.services.accounts.mailboxes import update_mailbox
from tests.conftest import assert_error
from tests.support.dovecot import Dovecot
from tests.ui.conftest import Ui, set_password


@pytest.fixture(scope="module")
def dovecot():
    with Dovecot(user="inbox@corp.example", password="imap-pw-9") as server:
        yield server


def _inbox(ctx, mailbox_id, dovecot, password):
    update_mailbox(ctx, mailbox_id, {
        "imap_host": dovecot.host, "imap_port": dovecot.port, "imap_security": "none",
        "imap_username": dovecot.user, "imap_password": password,
    })  # fmt: skip


def test_the_api_says_whether_replies_can_be_read(ctx, api, world, dovecot):
    path = f"/mailboxes/{world.mailbox.id}/test-inbox"
    refused = assert_error(api.post(path), 422, "validation_error")
    assert "no inbox to test" in refused["message"]
    _inbox(ctx, world.mailbox.id, dovecot, "imap-pw-9")
    works = api.post(path).json()
    assert works["ok"] is True and "replies can be read" in works["reply"]
    _inbox(ctx, world.mailbox.id, dovecot, "wrong")
    failed = api.post(path).json()
    assert failed["ok"] is False and failed["reply"].startswith("login refused")
    assert "wrong" not in failed["reply"]
    assert_error(api.post(path, role="other"), 404, "mailbox_not_found")


def test_the_settings_page_has_a_test_inbox_button(ctx, world, dovecot):
    set_password(ctx, world.user.id, "pw")
    rep = Ui(ctx, world).sign_in("rep@example.com", "pw", "/settings")
    assert f'action="/settings/mailboxes/{world.mailbox.id}/test-inbox"' not in (
        rep.client.get("/settings").text
    )
    _inbox(ctx, world.mailbox.id, dovecot, "imap-pw-9")
    page = rep.client.get("/settings").text
    assert f'action="/settings/mailboxes/{world.mailbox.id}/test-inbox"' in page
    done = rep.client.post(
        f"/settings/mailboxes/{world.mailbox.id}/test-inbox", data={"csrf_token": rep.token}
    )
    assert done.status_code == 200 and "Inbox works: logged in" in done.text
