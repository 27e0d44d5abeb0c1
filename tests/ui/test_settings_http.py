"""Settings over HTTP: mailboxes (add, edit, test against a real SMTP sink, reconnect),
users and roles for admins only, API tokens; on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest

from cadenza.services.accounts import mailboxes, users
from tests.conftest import MISSING_ID
from tests.support.smtp_sink import SmtpSink
from tests.ui.conftest import Ui, set_password


@pytest.fixture
def admin_ui(ctx, world):
    users.create_user(ctx, "boss@example.com", role="admin", password="pw")
    set_password(ctx, world.user.id, "pw")
    return Ui(ctx, world).sign_in("boss@example.com", "pw", "/settings")


def post(ui, path, **data):
    return ui.client.post(path, data={"csrf_token": ui.token, **data})


def note(page, key):
    """The error or notice shown next to one form."""
    return "".join(re.findall(rf'id="{key}-(?:error|notice)"[^>]*>([^<]*)<', page.text))


def test_add_a_smtp_mailbox_test_it_and_change_its_limits(admin_ui, ctx):
    with SmtpSink() as sink:
        page = post(
            admin_ui, "/settings/mailboxes", from_email="boss@example.com", from_name="Boss",
            transport="smtp", smtp_host=sink.host, smtp_port=str(sink.port),
            smtp_security="none", smtp_password="s3cret-pw", per_minute_limit="5",
            daily_limit="200",
        )  # fmt: skip
        assert page.status_code == 200
        [box] = [m for m in mailboxes.list_mailboxes(ctx) if m.from_email == "boss@example.com"]
        assert (box.per_minute_limit, box.daily_limit) == (5, 200)
        assert mailboxes.smtp_password(ctx, box) == "s3cret-pw"  # stored sealed
        assert "s3cret-pw" not in box.smtp_password
        assert "s3cret-pw" not in page.text  # write-only
        tested = post(admin_ui, f"/settings/mailboxes/{box.id}/test")
        assert note(tested, f"mailbox-{box.id}").startswith("Connection works")
        assert sink.message_count == 0  # a test sends nothing
    failed = post(admin_ui, f"/settings/mailboxes/{box.id}/test")
    assert note(failed, f"mailbox-{box.id}").startswith("Connection failed")
    edited = post(
        admin_ui, f"/settings/mailboxes/{box.id}", from_name="Boss", transport="smtp",
        smtp_host="127.0.0.1", smtp_port="2525", smtp_security="none", per_minute_limit="7",
        daily_limit="300",
    )  # fmt: skip
    assert note(edited, f"mailbox-{box.id}") == "Saved."
    box = mailboxes.get_mailbox(ctx, box.id)
    # a new port: the password was given for the old server, so it is cleared
    assert (box.per_minute_limit, box.smtp_port, box.smtp_password) == (7, 2525, None)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"per_minute_limit": "lots"}, "whole number"),
        ({"per_minute_limit": "0"}, "per_minute_limit"),
        ({"transport": "smtp"}, "smtp_host"),
        ({"transport": "pigeon"}, "pigeon"),
        ({"from_email": "not an address"}, "not a valid email"),
    ],
)
def test_bad_mailbox_input_is_shown_next_to_the_form(admin_ui, ctx, fields, message):
    before = len(mailboxes.list_mailboxes(ctx))
    base = {"from_email": "new@example.com", "per_minute_limit": "10", "daily_limit": "100"}
    page = post(admin_ui, "/settings/mailboxes", **{**base, **fields})
    assert 400 <= page.status_code < 500
    assert message in note(page, "mailbox-new")
    assert len(mailboxes.list_mailboxes(ctx)) == before


def test_members_manage_only_their_own_mailboxes(admin_ui, ctx, world):
    other = mailboxes.create_mailbox(ctx, users.find_user_by_email(ctx, "boss@example.com").id,
                                     "boss@example.com")  # fmt: skip
    admin_ui.client.cookies.clear()
    assert admin_ui.login("rep@example.com", "pw").status_code == 303
    admin_ui.token = admin_ui.csrf("/settings")
    page = admin_ui.client.get("/settings")
    assert "boss@example.com" not in page.text and "Users and roles" not in page.text
    assert post(admin_ui, f"/settings/mailboxes/{other.id}/test").status_code == 404
    assert post(admin_ui, "/settings/users", email="x@example.com").status_code == 403


def test_admins_add_users_and_change_roles_but_keep_one_admin(admin_ui, ctx):
    added = post(admin_ui, "/settings/users", email="new@example.com", role="viewer",
                 password="pw", timezone="Europe/Oslo")  # fmt: skip
    assert added.status_code == 200
    new = users.find_user_by_email(ctx, "new@example.com")
    assert (new.role, new.can_enroll, new.timezone) == ("viewer", False, "Europe/Oslo")
    post(admin_ui, f"/settings/users/{new.id}", role="member", can_enroll="on")
    new = users.find_user_by_email(ctx, "new@example.com")
    assert (new.role, new.can_enroll) == ("member", True)
    boss = users.find_user_by_email(ctx, "boss@example.com")
    refused = post(admin_ui, f"/settings/users/{boss.id}", role="member")
    assert refused.status_code == 409 and "last admin" in note(refused, f"user-{boss.id}")
    bad = post(admin_ui, "/settings/users", email="new@example.com")
    assert bad.status_code == 409 and "already exists" in note(bad, "user-new")
    bad_zone = post(admin_ui, "/settings/users", email="z@example.com", timezone="Nowhere")
    assert bad_zone.status_code == 422


def test_tokens_are_shown_once_listed_by_prefix_and_revoked(admin_ui, ctx):
    page = post(admin_ui, "/settings/tokens", name="laptop")
    token = re.search(r'id="new-token">([^<]+)<', page.text).group(1)
    boss = users.user_for_token(ctx, token)
    assert boss.email == "boss@example.com"
    [row] = users.list_tokens(ctx, boss.id)
    listed = admin_ui.client.get("/settings").text
    assert token not in listed and f"{row.prefix}…" in listed
    assert post(admin_ui, f"/settings/tokens/{row.id}/revoke").status_code == 200
    assert users.user_for_token(ctx, token) is None
    assert post(admin_ui, f"/settings/tokens/{MISSING_ID}/revoke").status_code == 404
    assert post(admin_ui, "/settings/tokens", name="").status_code == 422


def test_create_a_sequence_then_archive_it(admin_ui, ctx):
    from cadenza.services.sequences.catalog import get_sequence

    made = admin_ui.client.post(
        "/sequences", data={"csrf_token": admin_ui.token, "name": "Trade show"},
        follow_redirects=False,
    )  # fmt: skip
    assert made.status_code == 303
    sequence_id = int(made.headers["location"].split("/")[2])
    assert admin_ui.client.get(made.headers["location"]).status_code == 200
    assert get_sequence(ctx, sequence_id).name == "Trade show"
    blank = post(admin_ui, "/sequences", name="   ")
    assert blank.status_code == 422 and "1 to 200 characters" in blank.text
    archived = admin_ui.client.post(
        f"/sequences/{sequence_id}/archive", headers={"X-CSRF-Token": admin_ui.token}
    )
    assert archived.status_code == 204
    assert archived.headers["HX-Redirect"] == f"/sequences/{sequence_id}"
    # Still reachable, flagged, under the Archived filter only, and back again on request.
    page = admin_ui.client.get(f"/sequences/{sequence_id}")
    assert page.status_code == 200 and 'id="archived-banner"' in page.text
    assert 'id="edit-sequence"' not in page.text
    assert "Trade show" not in admin_ui.client.get("/sequences").text
    assert "Trade show" in admin_ui.client.get("/sequences?archived=1").text
    editor = admin_ui.client.get(f"/sequences/{sequence_id}/edit")
    assert editor.status_code == 409 and "unarchive it first" in editor.text
    back = admin_ui.client.post(
        f"/sequences/{sequence_id}/unarchive", headers={"X-CSRF-Token": admin_ui.token}
    )
    assert back.status_code == 204
    assert 'id="archived-banner"' not in admin_ui.client.get(f"/sequences/{sequence_id}").text
    assert "Trade show" in admin_ui.client.get("/sequences").text


def test_the_inbox_is_set_on_the_settings_page_and_its_password_stays_write_only(
    admin_ui, ctx, world
):
    box = mailboxes.create_mailbox(
        ctx, world.user.id, "imap@example.com", transport="smtp", smtp_host="127.0.0.1",
        smtp_port=2525, smtp_security="none",
    )  # fmt: skip
    smtp = {"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": "2525",
            "smtp_security": "none", "per_minute_limit": "10", "daily_limit": "1000"}  # fmt: skip
    page = admin_ui.client.get("/settings").text
    assert 'name="imap_host"' in page and "replies not detected" in page
    saved = post(
        admin_ui, f"/settings/mailboxes/{box.id}", **smtp, imap_host="127.0.0.1",
        imap_port="993", imap_security="tls", imap_username="imap", imap_password="in-s3cret",
    )  # fmt: skip
    assert note(saved, f"mailbox-{box.id}") == "Saved." and "in-s3cret" not in saved.text
    stored = mailboxes.get_mailbox(ctx, box.id)
    assert (stored.imap_host, stored.imap_port, stored.imap_username) == ("127.0.0.1", 993, "imap")
    assert mailboxes.imap_password(ctx, stored) == "in-s3cret"
    assert "replies not detected" not in saved.text
    # Saved again with the password left blank: the stored one stays.
    post(admin_ui, f"/settings/mailboxes/{box.id}", **smtp, imap_host="127.0.0.1",
         imap_port="993", imap_security="tls", imap_username="imap")  # fmt: skip
    assert mailboxes.imap_password(ctx, mailboxes.get_mailbox(ctx, box.id)) == "in-s3cret"
    bad = post(admin_ui, f"/settings/mailboxes/{box.id}", **smtp, imap_port="nine")
    assert bad.status_code == 422 and "whole number" in note(bad, f"mailbox-{box.id}")
    # Cleared: the inbox is no longer read, and the page says so again.
    cleared = post(admin_ui, f"/settings/mailboxes/{box.id}", **smtp, imap_host="")
    assert mailboxes.get_mailbox(ctx, box.id).imap_host is None
    assert "replies not detected" in cleared.text
