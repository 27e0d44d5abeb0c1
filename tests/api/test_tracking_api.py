"""Unsubscribe, open and click links over HTTP, on emails the worker really composed.

Each test sends through the engine (capture transport), parses the stored MIME the
way a mail client would and follows the links it finds against the app.
"""

from datetime import timedelta
from email.parser import Parser
from email.policy import default
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select

from cadenza.config import Settings
from cadenza.domain.link_tokens import Purpose, sign
from cadenza.services.accounts.link_secret import link_secret
from cadenza.services.analytics.engagement import Engagement, engagement, engagement_by_step
from cadenza.store.models import AuditEntry, Contact, EmailEvent, Enrollment, Message, StepRun
from tests.conftest import assert_error, enroll_ids
from tests.conftest import enroll_over_api as enroll

BODY = (
    '<p>Hi {{ contact.firstname }}, see <a href="https://example.com/pricing?plan=pro&amp;x=1">'
    'pricing</a> or <a href="https://example.org/case-study">a case study</a>.</p>'
)
STEPS = [
    {"type": "email", "subject": "Hi {{ contact.firstname }}", "body": BODY},
    {"type": "email", "delay_days": 3, "thread_with_step": 1, "body": "<p>Bump</p>"},
]
TRACKED = {"track_opens": True, "track_clicks": True}
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        database_url="sqlite://",
        allow_multiple_sequences=True,
        password_hash_cost=4,
        key_file=str(tmp_path / "cadenza.key"),
    )


class Links(HTMLParser):
    def __init__(self, html):
        super().__init__()
        self.hrefs, self.imgs = [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.append(dict(attrs)["href"])
        elif tag == "img":
            self.imgs.append(dict(attrs)["src"])


class Sent:
    """One email as the recipient gets it, and its links as paths on our server."""

    def __init__(self, ctx, message: Message):
        self.row = message
        self.mime = Parser(policy=default).parsestr(message.raw)
        self.html = self.mime.get_body(("html",)).get_content()
        self.text = self.mime.get_body(("plain",)).get_content()
        found = Links(self.html)
        base = ctx.settings.public_url
        self.hrefs = [h.removeprefix(base) for h in found.hrefs]
        self.pixels = [src.removeprefix(base) for src in found.imgs]
        header = str(self.mime["List-Unsubscribe"])
        self.unsubscribe = header.strip("<>").removeprefix(base)
        self.clicks = [h for h in self.hrefs if h.startswith("/c/")]


def send_first_step(api, worker, contact=None, settings=None, name="Tracked"):
    world = api.world
    sequence = world.make_sequence(steps=STEPS, settings=settings or TRACKED, name=name)
    contact = contact or world.contact()
    [enrollment_id] = enroll_ids(world, [contact], sequence=sequence)
    worker.run_until(api.ctx.clock.now() + timedelta(minutes=1))
    with api.ctx.db.read() as session:
        message = session.scalar(select(Message).where(Message.enrollment_id == enrollment_id))
    assert message is not None and message.status == "sent"
    return Sent(api.ctx, message), enrollment_id, contact


def one(ctx, model, *where):
    with ctx.db.read() as session:
        return session.scalars(select(model).where(*where).order_by(model.id)).all()  # as recorded


def count(ctx, model, *where):
    with ctx.db.read() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_every_email_carries_one_click_unsubscribe_headers_and_a_footer_link(api, worker):
    sent, _, _ = send_first_step(api, worker, settings={"track_opens": False})
    assert sent.mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sent.unsubscribe.startswith("/u/") and len(str(sent.mime["List-Unsubscribe"])) < 120
    assert sent.hrefs[-1] == sent.unsubscribe  # the footer's link is the header's
    assert f"Unsubscribe ({api.ctx.settings.public_url}{sent.unsubscribe})" in sent.text
    # tracking off: the links are the author's own and there is no pixel
    assert sent.hrefs[:2] == [
        "https://example.com/pricing?plan=pro&x=1",
        "https://example.org/case-study",
    ]
    assert sent.pixels == [] and sent.row.links is None


def test_get_shows_a_confirmation_page_and_changes_nothing(api, worker):
    sent, enrollment_id, contact = send_first_step(api, worker)
    response = api.client.get(sent.unsubscribe)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in response.text and "<button" in response.text
    assert "a•••@corp.example" in response.text and "ann@corp.example" not in response.text
    assert one(api.ctx, Contact, Contact.id == contact.id)[0].unsubscribed_at is None
    assert one(api.ctx, Enrollment, Enrollment.id == enrollment_id)[0].state == "active"
    assert count(api.ctx, EmailEvent) == 0


def test_one_click_post_unsubscribes_and_unenrolls_from_everything(api, worker):
    ctx = api.ctx
    sent, first_id, contact = send_first_step(api, worker)
    other = api.world.make_sequence(steps=STEPS, name="Other")
    [second_id] = enroll_ids(api.world, [contact], sequence=other)
    response = api.client.post(
        sent.unsubscribe,
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    [row] = one(ctx, Contact, Contact.id == contact.id)
    assert row.unsubscribed_at == ctx.clock.now()
    enrollments = one(ctx, Enrollment, Enrollment.contact_id == contact.id)
    assert {(e.id, e.state, e.reason) for e in enrollments} == {
        (first_id, "unenrolled", "unsubscribed"),
        (second_id, "unenrolled", "unsubscribed"),
    }
    pending = one(ctx, StepRun, StepRun.status == "pending")
    assert pending == []
    [event] = one(ctx, EmailEvent)
    assert (event.kind, event.contact_id, event.message_id) == (
        "unsubscribe", contact.id, sent.row.id)  # fmt: skip
    assert event.dedupe_key == f"unsubscribe:contact:{contact.id}"

    # a repeat, later, changes nothing at all
    audit_rows = count(ctx, AuditEntry)
    ctx.clock.advance(timedelta(days=2))
    again = api.client.post(sent.unsubscribe, content="List-Unsubscribe=One-Click")
    assert again.status_code == 200
    assert one(ctx, Contact, Contact.id == contact.id)[0].unsubscribed_at == row.unsubscribed_at
    assert count(ctx, EmailEvent) == 1 and count(ctx, AuditEntry) == audit_rows
    # the page now says so, and the contact cannot be enrolled again
    assert "You are unsubscribed" in api.client.get(sent.unsubscribe).text
    refused = enroll(api, api.world, [contact], sequence_id=other.id).json()["results"][0]
    assert (refused["code"], refused["enrollment_id"]) == ("unsubscribed", None)
    # and the worker sends nothing more to them
    worker.run_until(ctx.clock.now() + timedelta(days=10))
    assert count(ctx, Message, Message.contact_id == contact.id) == 1


def test_forged_modified_and_truncated_tokens_are_refused(api, worker):
    sent, _, contact = send_first_step(api, worker)
    token = sent.unsubscribe.removeprefix("/u/")
    tracking_id = sent.row.tracking_id
    opened = sign(link_secret(api.ctx), Purpose.OPEN, tracking_id)
    bad = [
        token[:-1],
        token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),
        token[:12],
        sign(b"x" * 32, Purpose.UNSUBSCRIBE, tracking_id),  # signed with another key
        sign(link_secret(api.ctx), Purpose.UNSUBSCRIBE, "Q" * 16),  # no such message
        opened,  # an open token is no unsubscribe token
        "not-a-token",
        "A" * 300,
    ]
    for candidate in bad:
        assert_error(api.client.post(f"/u/{candidate}"), 404, "not_found")
        assert_error(api.client.get(f"/u/{candidate}"), 404, "not_found")
        page = api.client.get(f"/u/{candidate}", headers={"Accept": "text/html"})
        assert page.status_code == 404 and "This link is not valid" in page.text
    assert one(api.ctx, Contact, Contact.id == contact.id)[0].unsubscribed_at is None
    assert count(api.ctx, EmailEvent) == 0


def test_clicks_redirect_only_to_the_message_own_links(api, worker):
    ctx = api.ctx
    sent, enrollment_id, _ = send_first_step(api, worker)
    assert len(sent.clicks) == 2 and sent.row.links == [
        "https://example.com/pricing?plan=pro&x=1",
        "https://example.org/case-study",
    ]
    # the outbox shows the real links and no pixel: reading it records nothing
    assert "https://example.org/case-study" in sent.row.body_html
    assert "/c/" not in sent.row.body_html and "/o/" not in sent.row.body_html
    assert ctx.settings.public_url + sent.unsubscribe in sent.row.body_html
    ctx.clock.advance(timedelta(minutes=30))
    response = api.client.get(sent.clicks[1], headers={"User-Agent": BROWSER},
                              follow_redirects=False)  # fmt: skip
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.org/case-study"
    [event] = one(ctx, EmailEvent)
    assert (event.kind, event.enrollment_id, event.message_id) == (
        "click", enrollment_id, sent.row.id)  # fmt: skip
    assert event.data == {"user_agent": BROWSER, "flagged": None, "link": 1,
                          "url": "https://example.org/case-study"}  # fmt: skip
    # a genuine signature for a link the message does not have leads nowhere
    beyond = sign(link_secret(ctx), Purpose.CLICK, sent.row.tracking_id, 2)
    assert_error(api.client.get(f"/c/{beyond}", follow_redirects=False), 404, "not_found")
    # nor does changing the index of a real token
    key, index, sig = sent.clicks[0].removeprefix("/c/").split(".")
    tampered = f"/c/{key}.{int(index) + 1}.{sig}"
    assert_error(api.client.get(tampered, follow_redirects=False), 404, "not_found")
    # an unsubscribe token is not a click token
    assert_error(api.client.get(f"/c/{sent.unsubscribe.removeprefix('/u/')}"), 404, "not_found")
    assert count(ctx, EmailEvent) == 1


def test_the_open_pixel_is_a_gif_and_scanners_and_early_opens_are_flagged(api, worker):
    ctx = api.ctx
    sent, _, _ = send_first_step(api, worker)
    [pixel] = sent.pixels
    assert pixel.startswith("/o/") and pixel.endswith(".gif")

    def fetch(agent):
        response = api.client.get(pixel, headers={"User-Agent": agent})
        assert response.status_code == 200 and response.headers["content-type"] == "image/gif"
        assert response.content.startswith(b"GIF89a") and "no-store" in response.headers[
            "cache-control"]  # fmt: skip

    ctx.clock.set(sent.row.sent_at + timedelta(seconds=5))
    fetch(BROWSER)  # seconds after sending: a gateway prefetch, not a person
    ctx.clock.advance(timedelta(minutes=5))
    fetch("Mozilla/5.0 (compatible; BingPreview/1.0b)")
    fetch("Barracuda Sentinel (EE)")
    fetch(BROWSER)
    fetch(BROWSER)
    api.client.get(sent.clicks[0], headers={"User-Agent": "Mimecast-Url-Protect"},
                   follow_redirects=False)  # fmt: skip
    api.client.get(sent.clicks[0], headers={"User-Agent": BROWSER}, follow_redirects=False)
    flags = [e.data["flagged"] for e in one(ctx, EmailEvent, EmailEvent.kind == "open")]
    assert flags == ["too_soon", "scanner", "scanner", None, None]
    expected = Engagement(opened=1, clicked=1, opens=2, clicks=1, flagged_opens=3,
                          flagged_clicks=1)  # fmt: skip
    assert engagement(ctx, message_id=sent.row.id) == expected
    sequence_id = one(ctx, Enrollment, Enrollment.id == sent.row.enrollment_id)[0].sequence_id
    assert engagement(ctx, sequence_id=sequence_id) == expected
    assert engagement(ctx, sequence_id=sequence_id, step_position=1) == expected
    assert engagement(ctx, sequence_id=sequence_id, step_position=2) == Engagement()
    assert engagement_by_step(ctx, sequence_id) == {1: expected}
    bad = sent.pixels[0].replace(".gif", "x.gif")
    assert_error(api.client.get(bad), 404, "not_found")


def test_engagement_counts_each_step_and_message_separately(api, worker):
    ctx = api.ctx
    first, _, ann = send_first_step(api, worker, contact=api.world.contact("ann@corp.example"))
    second, _, _ = send_first_step(api, worker, contact=api.world.contact("bob@corp.example"),
                                   name="Second")  # fmt: skip
    worker.run_until(ctx.clock.now() + timedelta(days=5))  # the follow-ups go out
    with ctx.db.read() as session:
        follow_up = session.scalar(
            select(Message).where(Message.contact_id == ann.id, Message.in_reply_to.is_not(None))
        )
    ctx.clock.advance(timedelta(hours=1))
    pixels = [first.pixels[0], first.pixels[0], second.pixels[0], Sent(ctx, follow_up).pixels[0]]
    for path in pixels:
        api.client.get(path, headers={"User-Agent": BROWSER})
    sequence_id = one(ctx, Enrollment, Enrollment.id == first.row.enrollment_id)[0].sequence_id
    by_step = engagement_by_step(ctx, sequence_id)
    assert by_step == {1: Engagement(opened=1, opens=2), 2: Engagement(opened=1, opens=1)}
    assert engagement(ctx, sequence_id=sequence_id) == Engagement(opened=2, opens=3)
    assert engagement(ctx, message_id=second.row.id) == Engagement(opened=1, opens=1)


def test_public_links_need_no_token_but_the_api_still_does(api, worker):
    sent, _, _ = send_first_step(api, worker)
    assert api.client.get(sent.unsubscribe).status_code == 200
    assert_error(api.client.get("/api/v1/messages"), 401, "unauthenticated")
    paths = api.client.get("/openapi.json").json()["paths"]
    assert not any(p.startswith(("/u/", "/o/", "/c/")) for p in paths)
