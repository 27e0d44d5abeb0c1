"""A/B variants in Chromium: a two-variant step built in the sequence editor (tabs),
enrollments run through the engine on an injected clock, both variants' emails seen at
the SMTP sink, the variant shown in the outbox and the timeline, and the analytics page
splitting the step's figures per variant."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta

from cadenza.domain.variants import assigned_label
from cadenza.services.accounts import mailboxes
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.store.models import Contact
from tests.support.smtp_sink import SmtpSink
from tests.ui.engine import run_engine

WEBINAR = "Webinar invite"  # demo: two emails, the second in the thread of the first
B_SUBJECT = "Quick question about outbound in {{ contact.industry }}"


def one_per_variant(server_ctx, demo, sequence_id: int) -> dict[str, int]:
    """Enrolls demo contacts until each variant has one: label -> enrollment id."""
    enrolled: dict[str, int] = {}
    with server_ctx.db.read() as session:
        candidates = session.scalars(
            Contact.__table__.select().with_only_columns(Contact.id).where(
                Contact.properties["industry"].as_string().is_not(None), *demo.reachable()
            ).order_by(Contact.id)
        ).all()  # fmt: skip
    for contact_id in candidates:
        label = assigned_label(["A", "B"], sequence_id, contact_id, 1)
        if label in enrolled:
            continue
        request = EnrollRequest(sequence_id, demo.user_id, [ContactRequest(contact_id)],
                                mailbox_id=demo.mailbox_id)  # fmt: skip
        [result] = enroll(server_ctx, request)
        if result.ok:
            enrolled[label] = result.enrollment_id
        if len(enrolled) == 2:
            return enrolled
    raise AssertionError(f"no demo contact to enroll for each variant: {enrolled}")


def test_a_two_variant_step_built_sent_and_split(tab, server_ctx, demo):
    webinar = demo.sequence_id(WEBINAR)
    page = tab.page
    tab.login(path=f"/sequences/{webinar}/edit")
    page.click("button[value='variant-add:1']")
    page.wait_for_selector("#step-1-variant-B", state="attached")
    # Tabs: one variant at a time, B's panel shown by its tab.
    assert page.locator("#step-1-variant-A").is_visible()
    assert not page.locator("#step-1-variant-B").is_visible()
    page.click("#step-1-tab-B")
    assert page.locator("#step-1-variant-B").is_visible()
    assert not page.locator("#step-1-variant-A").is_visible()
    page.fill("input[name='step-1-variant-B-subject']", B_SUBJECT)
    tab.shot("editor-variants")
    page.click("#save-sequence")
    page.wait_for_url(tab.url(f"/sequences/{webinar}"))

    with SmtpSink() as sink:
        mailboxes.update_mailbox(
            server_ctx,
            demo.mailbox_id,
            {"transport": "smtp", "smtp_host": sink.host, "smtp_port": sink.port,
             "smtp_security": "none"},
        )  # fmt: skip
        enrolled = one_per_variant(server_ctx, demo, webinar)
        run_engine(server_ctx, datetime.now(UTC) + timedelta(minutes=1), until_sent=2)
        subjects = [email.message_from_bytes(m.data)["Subject"] for m in sink.wait_for_messages(2)]
    assert any(s.startswith("Invitation: scaling outbound in ") for s in subjects), subjects
    assert any(s.startswith("Quick question about outbound in ") for s in subjects), subjects

    tab.visit("/outbox", "outbox-variants")
    badges = page.locator("table.messages .badge.variant").all_inner_texts()
    assert {"variant A", "variant B"} <= set(badges)
    tab.visit(f"/enrollments/{enrolled['B']}")
    assert page.locator("li.step .badge.variant[data-variant='B']").count() == 1

    tab.visit(f"/sequences/{webinar}", "analytics-variants")
    for label in ("A", "B"):
        row = page.locator(f"tr.variant-row[data-step='1'][data-variant='{label}']")
        assert row.locator("td.sent").inner_text() == "1"
    assert "No test yet" in page.inner_text("tr.variant-test[data-step='1']")
