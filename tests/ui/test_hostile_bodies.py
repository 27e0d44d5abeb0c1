"""A stored body crafted to run script or navigate, opened by the (admin) demo user in
real Chromium: in the sequence editor, the enroll dialog's per-contact editor, the live
preview and the outbox. It does neither, in any of them.

The body passes the save-time cleaner: Jinja tags are kept verbatim (Jinja escapes what
they print), so markup inside a string literal is stored as it was written. The browser
must not take it for markup: the rich editor cleans what it shows; the preview and the
outbox show rendered, nh3-cleaned HTML. The page's CSP would block an inline handler, but
it would say so as a console error, which fails the test (tests/ui/conftest.py) just as a
handler that ran would.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from cadenza.services.delivery import outbox
from cadenza.services.enrollment.enroll import ContactRequest, EnrollRequest, enroll
from cadenza.services.sequences.catalog import create_sequence, get_sequence, step_specs
from cadenza.store.models import Message
from tests.ui.engine import run_engine

READY = 2  # demo contact Hana Usman
HOSTILE_BODY = (
    "<p>Hello {{ contact.firstname }}</p>"
    "{{ \"<img src=x onerror='window.pwned=1'>\" }}"
    "{{ '<scr' ~ 'ipt>window.pwned=2</scr' ~ 'ipt>' }}"
    "{{ '<script>window.pwned=3</script>' }}"
    '{# <meta http-equiv="refresh" content="0;url=/logout"> #}'
    '<p><a href="{{ \'" onfocus="window.pwned=4" autofocus x="\' }}">focus</a></p>'
    "<p><a href=\"{{ 'javascript:window.pwned=5' }}\">click</a></p>"
    '{{ \'<iframe src="/logout"></iframe><form action="/logout"></form>\' }}'
)
# What no page may contain after showing the body (outside the page's own markup).
FORBIDDEN = "script, iframe, meta[http-equiv], form[action='/logout'], [onerror], [onfocus]"


def _hostile_sequence(ctx):
    sequence = create_sequence(
        ctx,
        1,
        "Hostile body",
        steps=[{"type": "email", "subject": "Hi {{ contact.firstname }}", "body": HOSTILE_BODY}],
    )
    # the save-time cleaner keeps Jinja tags byte for byte, hostile literals included
    stored = step_specs(get_sequence(ctx, sequence.id))[0].body
    assert "{{ \"<img src=x onerror='window.pwned=1'>\" }}" in stored
    assert '<a href="{{ \'" onfocus="window.pwned=4" autofocus x="\' }}"' in stored
    return sequence


def _assert_nothing_ran(tab, path: str, scope: str, own: str = "") -> None:
    """`own`: a :not() for the page's own elements that FORBIDDEN would match."""
    page = tab.page
    assert page.url == tab.url(path)  # no navigation
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.locator(f"{scope} :is({FORBIDDEN}){own}").count() == 0
    assert page.locator("meta[http-equiv='refresh']").count() == 0


def test_the_editor_and_its_preview_neither_run_nor_navigate(tab, server_ctx):
    sequence = _hostile_sequence(server_ctx)
    page = tab.page
    path = f"/sequences/{sequence.id}/edit"
    tab.login(path=path)
    page.wait_for_selector(".step-preview[data-step='1'] .preview-body")
    tab.shot("editor")
    _assert_nothing_ran(tab, path, "#step-1-body-rich")
    _assert_nothing_ran(tab, path, ".step-preview")
    # what the smuggled literals hold shows as text, in the editor and in the preview
    editor_text = page.inner_text("#step-1-body-rich")
    assert "window.pwned=1" in editor_text and "window.pwned=3" in editor_text
    preview = page.inner_text(".step-preview[data-step='1'] .preview-body")
    assert "<img src=x onerror='window.pwned=1'>" in preview
    assert "<script>window.pwned=2</script>" in preview
    # the editor's links keep no handler and no javascript: address
    for link in page.locator("#step-1-body-rich a").all():
        assert link.get_attribute("onfocus") is None
        assert not (link.get_attribute("href") or "").lower().startswith("javascript")


def test_the_enroll_dialog_editor_neither_runs_nor_navigates(tab, server_ctx):
    sequence = _hostile_sequence(server_ctx)
    page = tab.page
    path = f"/enroll?contact={READY}&sequence={sequence.id}"
    tab.login(path=path)
    page.wait_for_selector(f"#panel-c{READY} .rich-area", state="attached")
    page.click(f"#panel-c{READY} summary")  # open the contact's editor
    page.wait_for_selector(f"#panel-c{READY} .rich-area")
    tab.shot("enroll-dialog")
    _assert_nothing_ran(tab, path, f"#panel-c{READY}")
    assert "window.pwned=2" in page.inner_text(f"#panel-c{READY} .rich-area")


def test_the_outbox_shows_a_hostile_stored_message_inert(tab, server_ctx):
    sequence = _hostile_sequence(server_ctx)
    [result] = enroll(server_ctx, EnrollRequest(sequence.id, 1, [ContactRequest(READY)]))
    assert result.ok, result
    run_engine(server_ctx, datetime.now(UTC) + timedelta(minutes=1), until_sent=1)
    [message] = outbox.list_messages(server_ctx, status="sent")
    # what went out: the literals printed as text, nothing live
    assert "&lt;img src=x" in message.body_html and 'onfocus="' not in message.body_html
    assert "<script" not in message.body_html and "javascript:" not in message.body_html
    # and a row written by anything else is cleaned when shown
    with server_ctx.db.transaction() as session:
        session.execute(
            update(Message)
            .where(Message.id == message.id)
            .values(body_html=message.body_html + "<img src='data:,' onerror='window.pwned=6'>"
                    "<script>window.pwned=7</script><meta http-equiv='refresh' content='0;url=/'>")
        )  # fmt: skip

    page = tab.page
    path = f"/outbox/{message.id}"
    tab.login(path=path)
    frame = page.frame_locator("iframe.email-body")
    frame.locator("body p").first.wait_for()
    tab.shot("outbox-message")
    _assert_nothing_ran(tab, path, "main", own=":not(iframe.email-body)")
    assert frame.locator(f":is({FORBIDDEN})").count() == 0
    assert "<img src=x onerror='window.pwned=1'>" in frame.locator("body").inner_text()
