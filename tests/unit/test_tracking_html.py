"""What tracking adds to a body, and which opens and clicks count as a person's."""

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from cadenza.domain import templates
from cadenza.domain.errors import CadenzaError
from cadenza.domain.link_tokens import Purpose, verify
from cadenza.domain.message import html_to_text
from cadenza.domain.tracking import LinkMaker, decorate, flag_for

SECRET = b"s" * 32
LINKS = LinkMaker("https://mail.example.com", SECRET)
BODY = templates.clean_html(
    '<p>See <a href="https://example.com/p?a=1&amp;b=2">pricing</a>, '
    '<a href="mailto:sales@example.com">write</a>, '
    '<a href="https://example.com/p?a=1&amp;b=2">pricing again</a> and '
    '<a href="http://example.org/">org</a>.</p>'
)


class Hrefs(HTMLParser):
    def __init__(self, html):
        super().__init__()
        self.hrefs, self.imgs = [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.append(dict(attrs)["href"])
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])


def test_untracked_body_gets_only_an_unsubscribe_footer():
    body = decorate(BODY, LINKS, "A" * 16, track_opens=False, track_clicks=False)
    parsed = Hrefs(body.html)
    assert parsed.hrefs[:4] == [
        "https://example.com/p?a=1&b=2",
        "mailto:sales@example.com",
        "https://example.com/p?a=1&b=2",
        "http://example.org/",
    ]
    assert parsed.hrefs[4] == body.unsubscribe_url == LINKS.unsubscribe("A" * 16)
    assert parsed.imgs == [] and body.links == []
    assert f"Unsubscribe ({body.unsubscribe_url})" in body.text


def test_clicks_go_through_signed_redirects_one_per_distinct_url():
    body = decorate(BODY, LINKS, "B" * 16, track_opens=True, track_clicks=True)
    parsed = Hrefs(body.html)
    assert body.links == ["https://example.com/p?a=1&b=2", "http://example.org/"]
    clicks = [h for h in parsed.hrefs if "/c/" in h]
    assert len(clicks) == 3 and clicks[0] == clicks[1]
    refs = [verify(SECRET, Purpose.CLICK, h.rpartition("/")[2]) for h in clicks]
    assert [r.link_index for r in refs] == [0, 0, 1] and refs[0].tracking_id == "B" * 16
    assert "mailto:sales@example.com" in parsed.hrefs  # only http(s) links are tracked
    assert parsed.hrefs[-1] == body.unsubscribe_url  # never behind a redirect
    assert parsed.imgs == [LINKS.open_pixel("B" * 16)]
    # the plain-text alternative shows the real links, and no pixel
    assert "https://example.com/p?a=1&b=2" in body.text and "/c/" not in body.text


def test_a_template_can_place_the_unsubscribe_link_itself():
    source = templates.sanitize_html(
        '<p>Hi</p><p><a href="{{ unsubscribe_url }}">Opt out here</a></p>'
    )
    templates.validate_template(source)
    rendered = templates.clean_html(templates.render(source, {}, html=True))
    body = decorate(rendered, LINKS, "C" * 16, track_opens=False, track_clicks=True)
    assert Hrefs(body.html).hrefs == [LINKS.unsubscribe("C" * 16)]
    assert "Not interested?" not in body.html and body.links == []
    assert templates.UNSUBSCRIBE_PLACEHOLDER not in body.html + body.text


def test_other_free_names_are_still_refused():
    with pytest.raises(CadenzaError) as exc:
        templates.validate_template("{{ tracking_url }}")
    assert exc.value.code == "unsafe_template"


SENT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GRACE = timedelta(seconds=60)
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko)"


@pytest.mark.parametrize(
    ("agent", "after", "flag"),
    [
        (BROWSER, 3600, None),
        (BROWSER, 5, "too_soon"),
        (BROWSER, 59, "too_soon"),
        ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com "
         "GoogleImageProxy)", 3600, None),  # Gmail's proxy: a person, anonymised
        ("Mozilla/5.0 (compatible; BingPreview/1.0b)", 3600, "scanner"),
        ("Barracuda Sentinel (EE)", 3600, "scanner"),
        ("Mimecast-Url-Protect/1.0", 3600, "scanner"),
        ("Mozilla/5.0 Proofpoint URL Defense", 3600, "scanner"),
        ("", 3600, "scanner"),
        (None, 3600, "scanner"),
    ],
)  # fmt: skip
def test_flags(agent, after, flag):
    assert flag_for(agent, SENT, SENT + timedelta(seconds=after), GRACE) == flag


def test_an_open_before_the_send_is_recorded_is_too_soon():
    assert flag_for(BROWSER, None, SENT, GRACE) == "too_soon"


PLACED = templates.UNSUBSCRIBE_PLACEHOLDER


@pytest.mark.parametrize(
    "links",
    [LINKS, LinkMaker("https://mail.example.com/x?a=1&amp", SECRET)],  # an odd base URL
    ids=["plain", "ampersand"],
)
@pytest.mark.parametrize(
    "html",
    [
        BODY,
        f'<p>Bye: <a href="{PLACED}">{PLACED}</a></p>',
    ],
    ids=["footer", "placed"],
)
def test_the_text_part_of_one_body_carries_each_messages_own_link(links, html):
    """The text of a body is made once and each message's link put in: every message
    gets exactly the text made from its own HTML."""
    first, second = (
        decorate(html, links, key * 16, track_opens=True, track_clicks=True) for key in "AB"
    )
    for body in (
        first,
        second,
        decorate(html, links, "A" * 16, track_opens=False, track_clicks=False),
    ):
        assert body.text == html_to_text(body.untracked_html)
    assert first.unsubscribe_url != second.unsubscribe_url and first.text != second.text
    if links is LINKS:  # (the odd base reads back unescaped in the text, as it always did)
        assert first.unsubscribe_url in first.text and second.unsubscribe_url in second.text
