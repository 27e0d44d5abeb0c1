"""The mailbox page (issue 14 §3) over HTTP: its figures, the replies warning, and the
settings page's link and badge; another member's mailbox answers as a missing one."""

from __future__ import annotations

from datetime import timedelta

from cadenza.services.accounts.mailboxes import create_mailbox, update_mailbox
from cadenza.services.accounts.users import create_user
from tests.conftest import enroll_ids


def test_the_page_shows_what_the_engine_did(ctx, world, rep, worker):
    enroll_ids(world, world.contacts(3))
    worker.run_until(ctx.clock.now() + timedelta(minutes=5))
    page = rep.client.get(f"/settings/mailboxes/{world.mailbox.id}")
    assert page.status_code == 200, page.text
    assert '<dd id="sent-day">3 of 1000</dd>' in page.text
    assert '<dd id="due-now">0</dd>' in page.text and "Nothing is held back." in page.text
    assert 'id="mailbox-disconnected"' not in page.text
    # A capture mailbox sends nothing real: nobody can reply, nothing to warn about.
    assert 'id="replies-off"' not in page.text
    settings = rep.client.get("/settings").text
    assert f'href="/settings/mailboxes/{world.mailbox.id}"' in settings
    assert "replies not detected" not in settings


def test_an_smtp_mailbox_without_an_inbox_is_marked_until_one_is_read(
    ctx,
    world,
    rep,
    smtp_box,
):
    page = rep.client.get(f"/settings/mailboxes/{smtp_box.id}").text
    assert 'id="replies-off"' in page and "keeps getting follow-ups" in page
    assert "replies not detected" in rep.client.get("/settings").text

    update_mailbox(ctx, smtp_box.id, {"imap_host": "127.0.0.1", "imap_port": 993})
    page = rep.client.get(f"/settings/mailboxes/{smtp_box.id}").text
    assert 'id="replies-off"' not in page and "Not read yet" in page
    assert "replies not detected" not in rep.client.get("/settings").text


def test_another_member_s_mailbox_is_not_found(ctx, world, rep):
    bea = create_user(ctx, "bea@example.com")
    theirs = create_mailbox(ctx, bea.id, "bea@example.com")
    assert rep.client.get(f"/settings/mailboxes/{theirs.id}").status_code == 404
    assert rep.client.get("/settings/mailboxes/0").status_code == 422
