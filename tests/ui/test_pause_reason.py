"""Issue 11 item 11 in Chromium: an out-of-office pause says why and when it resumes, on
the enrollment's page and in the enrollments list, instead of a date that will not happen."""

from __future__ import annotations

from datetime import date

from cadenza.domain.enums import EventKind
from cadenza.services.accounts.users import find_user_by_email
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.services.signals.effects import Signal, record_signal
from tests.ui.conftest import DEMO_EMAIL

INBOUND = 1  # demo: three emails


def test_an_out_of_office_pause_shows_why_and_when(tab, server_ctx):
    rep = find_user_by_email(server_ctx, DEMO_EMAIL)
    [result] = enroll(
        server_ctx,
        EnrollRequest(sequence_id=INBOUND, user_id=rep.id, contacts=[ContactRequest(1)],
                      timezone="Europe/Berlin"),
    )  # fmt: skip
    assert result.ok, result
    back = date(2099, 1, 5)
    auto = Signal(EventKind.AUTO_REPLY, "ooo-ui", contact_id=1, return_date=back)
    assert record_signal(server_ctx, auto).paused == [result.enrollment_id]

    page = tab.page
    tab.login(path=f"/enrollments/{result.enrollment_id}")
    note = page.locator(".pause-note[data-pause='out_of_office']")
    assert "Paused by an out-of-office reply" in note.inner_text()
    assert note.locator(".resume-at").inner_text() == "Mon 05 Jan 2099 00:00 CET"
    first = page.locator(".timeline li.status-paused").first
    assert "after the pause: due Mon 05 Jan 2099" in first.inner_text()
    tab.shot("out-of-office")

    tab.visit("/enrollments?state=paused", "paused-list")
    card = page.locator(f"article[data-enrollment='{result.enrollment_id}']")
    assert "resumes by itself" in card.locator(".pause-note").inner_text()
