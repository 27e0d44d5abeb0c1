"""In the browser, two members side by side: a sequence made private disappears for the
other, shared to use it can be enrolled into but not edited, shared to edit it can; the
other clones it into a private copy of theirs, and the owner files it in a folder."""

from __future__ import annotations

import re

from tests.ui.conftest import Browser


def _share(tab: Browser, sequence_id: int, sharing: str) -> None:
    page = tab.page
    tab.visit(f"/sequences/{sequence_id}")
    page.click("#share-dialog summary")
    page.check(f"#share-form input[name=sharing][value={sharing}]")
    page.click("#share-form button[type=submit]")
    page.wait_for_url(tab.url(f"/sequences/{sequence_id}"))


def test_sharing_a_sequence_then_cloning_and_filing_it(tab, browser, demo_server, demo):
    demo_server.cli("user", "create", "olive@example.com", "--password", "olive-pw")
    sequence_id = demo.sequence_id("Inbound lead follow-up")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    other = Browser(context.new_page(), demo_server.url, "sharing-other")
    other.page.set_default_timeout(15_000)
    try:
        tab.login(path="/sequences")
        other.login("olive@example.com", "olive-pw", path="/sequences")
        assert "Inbound lead follow-up" in other.page.inner_text("table.sequences")

        # Private: gone from the other's list, and its page is not found.
        _share(tab, sequence_id, "private")
        assert "only me and admins" in tab.page.inner_text("#sharing-badge")
        tab.shot("private")
        other.visit("/sequences")
        assert "Inbound lead follow-up" not in other.page.inner_text("table.sequences")
        answer = other.page.request.get(other.url(f"/sequences/{sequence_id}"))
        assert answer.status == 404

        # Shared to use: the other may enroll (the button) but not edit.
        _share(tab, sequence_id, "team_use")
        other.visit(f"/sequences/{sequence_id}", "team-use")
        assert other.page.locator("#enroll-contacts").count() == 1
        assert other.page.locator("#edit-sequence").count() == 0
        assert other.page.locator("#share-dialog").count() == 0
        assert other.page.request.get(other.url(f"/sequences/{sequence_id}/edit")).status == 403

        # Shared to edit: the editor opens for them too; sharing stays the owner's.
        _share(tab, sequence_id, "team_edit")
        other.visit(f"/sequences/{sequence_id}")
        other.page.click("#edit-sequence")
        other.page.wait_for_url(other.url(f"/sequences/{sequence_id}/edit"))
        other.shot("team-edit-editor")
        other.visit(f"/sequences/{sequence_id}")
        assert other.page.locator("#share-dialog").count() == 0

        # The other clones it: a private copy of theirs, opened in the editor.
        other.page.click("#clone-dialog summary")
        other.page.fill("#clone-name", "Olive's inbound")
        other.page.click("#clone-form button[type=submit]")
        other.page.wait_for_url(re.compile(r".*/sequences/\d+/edit$"))
        copy_id = int(other.page.url.rsplit("/", 2)[1])
        assert copy_id != sequence_id
        other.visit(f"/sequences/{copy_id}", "clone")
        assert "only me and admins" in other.page.inner_text("#sharing-badge")
        copy_steps = other.page.locator("ol.steps li").count()
        tab.visit(f"/sequences/{sequence_id}")
        assert tab.page.locator("ol.steps li").count() == copy_steps > 0
        other.visit("/sequences")
        row = other.page.locator("table.sequences tbody tr", has_text="Olive's inbound")
        assert "private" in row.inner_text()

        # The owner files the original in a folder; the index filters by it.
        tab.visit(f"/sequences/{sequence_id}")
        tab.page.click("#move-dialog summary")
        tab.page.fill("#move-folder", "Inbound plays")
        tab.page.click("#move-form button[type=submit]")
        tab.page.wait_for_url(tab.url(f"/sequences/{sequence_id}"))
        assert "In folder Inbound plays" in tab.page.inner_text("#sequence-placement")
        tab.visit("/sequences")
        tab.page.click("#folders a[data-folder='Inbound plays']")
        tab.page.wait_for_url(re.compile(r".*folder=Inbound(\+|%20)plays"))
        tab.shot("folder")
        rows = tab.page.locator("table.sequences tbody tr")
        assert rows.count() == 1 and "Inbound lead follow-up" in rows.inner_text()
    finally:
        context.close()
    assert other.errors == [], f"console errors: {other.errors}"
